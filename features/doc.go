// Package features is weir's real-time online feature store: per-entity
// feature objects in a NATS JetStream KV bucket with an in-process ristretto
// cache in front, and feature sets whose streaming aggregations (count, sum,
// mean, std, min, max, last, distinct over sliding windows) are computed from
// raw events on the WEIR_INGEST stream and land in the same store.
//
// It owns the KV buckets weir-features, weir-featuresets and
// weir-features-agg, the stream WEIR_INGEST (subjects weir.ingest.>), the
// durable consumers agg-<set>, and the core NATS subscription on
// weir.features.>. It must not import the gateway, the model, plugin, route or
// monitor packages: the gateway calls it (Merge, Get, ReadFeatures, Lookup,
// DefineSet, Ingest, Backfill, Stats), never the other way round.
//
// The design decisions (key encoding, TTL, exactly-once aggregation across
// crashes and replicas, window buckets, approximate distinct) are written
// down in DESIGN.md beside this file.
package features
