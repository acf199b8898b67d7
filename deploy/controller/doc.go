// Package controller is weir's Kubernetes sidecar controller (`weir
// controller`): it makes the declared WeirRoute resources true on the local
// gateway through its admin API, and scales the gateway Deployment on weir's
// own load metrics.
//
// It owns three things, each started by Run under one leader-election lease so
// that one controller acts at a time:
//   - Reconciler: WeirRoute -> artifacts streamed to disk, verified and pushed,
//     the route set (and set back when it drifts), the rollout started,
//     followed or aborted, a promotion kept, unused versions deleted, status
//     and Events written. WeirRoutes reconcile concurrently, each with its own
//     backoff; one pass applies whatever does not depend on what failed. The
//     gateway spreads what it is given to every replica through NATS, so
//     pushing to the local one is enough. Only the WeirRoutes of its own
//     namespace are reconciled; one elsewhere that no controller takes up is
//     marked OtherNamespace and left off the gateway.
//   - Autoscaler: scrapes every gateway pod's /metrics and sets the Deployment's
//     replicas through the scale subresource with Recommend and Desired, pure
//     functions implementing the HorizontalPodAutoscaler's replica calculator
//     and behavior; their history lives in the WeirRoute's status, so a new
//     leader continues it.
//   - Run: the manager (cache, leader election, metrics) that hosts both.
//
// It talks to the gateway only through sdk/client, and must not import any
// gateway package (gateway, models, plugins, features, monitor, canary): it
// runs beside a gateway, not inside one. It imports router for
// router.Config, the one definition of the route body it sends.
package controller
