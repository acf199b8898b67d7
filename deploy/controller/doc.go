// Package controller is weir's Kubernetes sidecar controller (`weir
// controller`): it makes the declared WeirRoute resources true on the local
// gateway through its admin API, and scales the gateway Deployment on weir's
// own load metrics.
//
// It owns three things, each started by Run under one leader-election lease so
// that one controller acts at a time:
//   - Reconciler: WeirRoute -> artifacts fetched, verified and pushed, the route
//     set, the rollout started and followed, unused versions deleted, status and
//     Events written. The gateway spreads what it is given to every replica
//     through NATS, so pushing to the local one is enough.
//   - Autoscaler: scrapes every gateway pod's /metrics and sets the Deployment's
//     replicas through the scale subresource with Desired, a pure function
//     implementing the HorizontalPodAutoscaler's algorithm.
//   - Run: the manager (cache, leader election, metrics) that hosts both.
//
// It talks to the gateway only through sdk/client, and must not import any
// gateway package (gateway, store, runtime, ...): it runs beside a gateway,
// not inside one.
package controller
