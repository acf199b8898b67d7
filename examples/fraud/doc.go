// Package fraud is weir's reference case, end to end: a payments company
// scores each card transaction inline and blocks fraudulent accounts.
//
// It holds a synthetic but realistic transaction generator (accounts with
// habits, merchants with risk, and fraud patterns: bursts of small card-
// testing charges, large charges at unusual merchants at night), the
// feature definitions the enrichment plugin computes live, a logistic
// regression trained on generated history, and Setup, which installs all of
// it (models with reference data, plugins, feature set, route) into a
// running gateway through its public API, as a user would.
//
// fraud uses only sdk/client and internal/onnx of weir; the gateway knows
// nothing of it.
package fraud
