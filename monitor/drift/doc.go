// Package drift measures, per model version and per feature, how far live
// traffic has moved from the training distribution, and raises alerts when it
// moves too far.
//
// It owns: parsing reference datasets (ParseReference), the sliding windows of
// live values, the drift statistics, the durable JetStream consumer that feeds
// the windows from weir.events.>, drift alerts on weir.alerts.drift.<model>
// (plus an optional per-model webhook), and the weir_drift_* Prometheus
// metrics. It imports only monitor.Event and the subject/stream names from
// package monitor, and the event contract (monitor/event); it must not import the gateway, the model store, the router
// or the rollout controller (they consume it through MaxDrift and Results).
//
// The Monitor's lifecycle is monitor.go; its stream consumer
// monitor_consume.go, adding events to windows monitor_ingest.go, judging
// and crossings monitor_judge.go, per-model and per-version settings
// monitor_config.go.
//
// # How drift is measured
//
// Every input feature and every model output of a version gets a sliding
// window bounded by count (Config.WindowCount, default 1000) and by event time
// (Config.WindowAge, default 5m): a value older than the newest value in its
// window by more than WindowAge leaves it, and a value that arrives older
// than that (a spool replayed after a NATS outage) is not counted at all:
// windows follow event time, not arrival order. Adding a value is O(1): the window
// is a ring buffer and the value's histogram bin is computed on the way in, so
// bin counts are kept incrementally. Statistics are recomputed when
// Options.RecomputeEvery new values arrived for that feature, or at the next
// tick of Options.RecomputeInterval (default 1s), never per event; drift is
// therefore visible within about a second, not at a 10-minute batch.
//
// A numeric feature is binned on the reference deciles (deduplicated, open
// ended on both sides, so at most 10 bins). A categorical feature has one bin
// per reference category (the Options.MaxCategories most frequent ones) plus
// one "other" bin for everything else, unseen categories included. Over those
// bins the package computes:
//
//   - psi: population stability index, sum (a-e)·ln(a/e), with proportions
//     floored at 1e-4 so that empty bins stay finite;
//   - tvd: total variation distance, ½·sum |a-e|;
//   - hellinger: sqrt(1 - sum sqrt(a·e));
//   - kl: symmetric Kullback-Leibler divergence KL(a‖e)+KL(e‖a), zero
//     denominators replaced by 1e-4 (as MLRun does);
//   - general_drift: mean of tvd and hellinger (MLRun's general_drift, with
//     "potential drift" at 0.5 and "detected" at 0.7);
//   - numeric only: ks and ks_p, the two-sample Kolmogorov-Smirnov statistic
//     between the window and the reference, and its asymptotic p-value
//     (Kolmogorov distribution with Stephens' small-sample correction). The
//     ECDFs are compared on a grid of up to 250 reference order statistics
//     (each edge value and each open interval between edges is a bin), so no
//     sample is kept or sorted: the statistic is exact for references of at
//     most 250 rows (or with few distinct values) and never more than 1/250
//     below the exact one otherwise, far below the KS critical values of
//     windows of a few thousand values;
//   - categorical only: chi2_p, the chi-square goodness-of-fit p-value of the
//     window counts against the reference proportions.
//
// The decision metric is Config.Metric, default "psi" with threshold 0.25 (the
// industry rule of thumb: below 0.1 stable, 0.1-0.25 moderate, above 0.25
// significant shift). "general_drift" with threshold 0.5 is the MLRun-like
// choice. A window with fewer than Options.MinCount values is not judged.
// Metric "ks" on a categorical feature falls back to tvd.
//
// # Alerts
//
// A feature whose decision value reaches the threshold becomes drifted and
// one alert with state "drifted" is published; it becomes healthy again, with
// one "recovered" alert, only when the value falls below
// Config.RecoverRatio·threshold (default 0.8). Alerts are therefore per
// crossing, never per event.
//
// # Outputs
//
// Prediction drift is measured on Event.Outputs exactly like inputs, with kind
// "output". A scalar output is one feature named after the output; an array
// (nested arrays are flattened row-major) becomes one feature per element,
// named "<name>[i]", for the first Options.MaxElements elements. Input features
// that arrive as arrays (OIP calls without a feature list) are handled the same
// way. Output references are always inferred from the first events.
//
// # Wide tensors
//
// An input or output wider than event.WideElements (an image, an audio
// clip) arrives as a summary, not as values (monitor/event.TensorSummary).
// Its statistics become series of their own: "<name>.mean", "<name>.std",
// "<name>.min", "<name>.max" and, for each channel i of an image layout,
// "<name>.c<i>.mean" and so on. Drift on images is therefore drift of these
// summary statistics (a brightness or contrast shift shows; a change that
// keeps every channel's mean, spread and range does not). The hash is not
// a series.
//
// # How many series
//
// One version tracks at most 512 series (features, array elements, summary
// statistics, inputs and outputs together), the first ones met; values of
// any further series are ignored and counted in weir_drift_untracked_total.
//
// # References
//
// A reference uploaded with SetReference covers the features it names. Every
// other feature (and every output) infers its reference from its first
// Options.InferCount values (default 1000) and reports
// "inferred from first 1000 events"; the window starts after them.
//
// # Time
//
// Windows use event time (Event.TS, else the JetStream timestamp): replaying a
// backlog after downtime judges the traffic as it was. A window whose traffic
// stopped keeps its last values; Window.To in the results says how old they
// are.
//
// # Several gateway processes
//
// Windows live in memory. Processes sharing one Options.Durable share the
// events (each sees a part); giving each process its own durable name makes
// each see all traffic and compute the same drift, at the cost of one alert
// per process, unless Options.AlertGate names one speaker: then crossings
// are recorded in the KV bucket AlertBucket and each is alerted once, by
// whoever holds the gate when it can be sent. After a restart a durable consumer resumes after the last
// acknowledged event; the windows refill from there.
//
// # Events that are ignored
//
// Failed inferences (Status outside 2xx) are skipped: their inputs are often
// malformed. Shadow events are kept: they are real traffic for the shadow's
// model and version.
package drift
