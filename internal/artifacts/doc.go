// Package artifacts keeps uploaded artifacts (model and plugin bytes,
// reference data) in NATS JetStream so that every gateway on one NATS serves
// the same things: bytes in an Object Store bucket, content-addressed by
// sha256, and per name@version metadata in a KV bucket that replicas watch.
// It knows nothing of what the bytes mean; models and plugins do.
//
// It imports nothing from weir but internal/lifecycle, internal/retry and
// internal/weirerr.
package artifacts
