// Command fraud-features is weir's example enrichment plugin: it turns a
// card transaction into the features the fraud models were trained on
// (examples/fraud/features.go computes the same offline).
//
// Input: {"account_id":"a1","amount":120.5,"merchant":"m1","ts":1764039600}
// (ts: unix seconds or RFC 3339). Output: the input plus
//
//	amount_log     ln(1+amount)
//	amount_zscore  (amount - amount_mean_24h) / max(amount_std_24h, 1), in [-10, 10];
//	               0 for an account with no history
//	merchant_risk  from the config's table, else default_risk
//	is_night       1 between 00:00 and 06:00 UTC
//	hour_of_day    the UTC hour
//	tx_count_1h, merchants_24h
//	               the account's streaming aggregates, 0 without history
//
// The account's aggregates come from the online feature store (feature set
// "tx"), read through the host's features import.
//
// Config: {"merchant_risk":{"giftcards":0.6},"default_risk":0.1}.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o fraud-features.wasm .
package main

import (
	"errors"
	"math"
	"time"

	"github.com/weirhq/weir/sdk/plugin"
)

func init() { plugin.Handle(enrich) }

// main is never called: the plugin is a reactor (-buildmode=c-shared).
func main() {}

func enrich(ev plugin.Event) (plugin.Event, error) {
	amount, ok := plugin.Number(ev["amount"])
	if !ok {
		return nil, errors.New(`field "amount" must be a number`)
	}
	cfg := plugin.Config()
	ev["amount"] = amount
	ev["amount_log"] = math.Log1p(math.Max(amount, 0))

	hour, ok := hourOfDay(ev["ts"])
	if !ok {
		hour = time.Now().UTC().Hour()
	}
	ev["hour_of_day"] = float64(hour)
	ev["is_night"] = 0.0
	if hour < 6 {
		ev["is_night"] = 1.0
	}

	var agg plugin.Event
	if account, ok := ev["account_id"].(string); ok && account != "" {
		f, found, err := plugin.Features(account)
		if err != nil {
			// A feature store outage degrades to "no history" instead of
			// failing the payment: say so and carry on.
			plugin.Log(plugin.LevelWarn, "features of "+account+": "+err.Error())
		} else if found {
			agg = f
		}
	}
	z := 0.0
	if mean, ok := plugin.Number(agg["amount_mean_24h"]); ok {
		std, _ := plugin.Number(agg["amount_std_24h"])
		z = (amount - mean) / math.Max(std, 1)
	}
	ev["amount_zscore"] = math.Max(-10, math.Min(10, z))
	ev["tx_count_1h"] = num(agg, "tx_count_1h", 0)
	ev["merchants_24h"] = num(agg, "merchants_24h", 0)

	risk := num(cfg, "default_risk", 0.1)
	if m, ok := ev["merchant"].(string); ok {
		if table, ok := cfg["merchant_risk"].(map[string]any); ok {
			risk = num(table, m, risk)
		}
	}
	ev["merchant_risk"] = risk
	return ev, nil
}

// num reads a number from m, or def when it is missing or not a number.
func num(m map[string]any, key string, def float64) float64 {
	if f, ok := plugin.Number(m[key]); ok {
		return f
	}
	return def
}

// hourOfDay returns the UTC hour of an RFC 3339 time string or unix seconds.
func hourOfDay(ts any) (int, bool) {
	switch v := ts.(type) {
	case float64:
		return time.Unix(int64(v), 0).UTC().Hour(), true
	case string:
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return 0, false
		}
		return t.UTC().Hour(), true
	}
	return 0, false
}
