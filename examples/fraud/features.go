package fraud

import (
	"math"
	"time"
)

// Feature names. The enrichment plugin computes the first group from the
// event and the account's online features; the feature set "tx" keeps the
// windowed aggregates.
const (
	FAmountLog    = "amount_log"
	FAmountZScore = "amount_zscore"
	FMerchantRisk = "merchant_risk"
	FIsNight      = "is_night"
	FTxCount1h    = "tx_count_1h"
	FMerchants24h = "merchants_24h"
)

// FeaturesV1 and FeaturesV2 are the two model versions' feature lists: v2
// adds the streaming aggregates that catch card-testing bursts.
var (
	FeaturesV1 = []string{FAmountLog, FAmountZScore, FMerchantRisk, FIsNight}
	FeaturesV2 = []string{FAmountLog, FAmountZScore, FMerchantRisk, FIsNight, FTxCount1h, FMerchants24h}
)

// history is an account's recent transactions, for offline features that
// match what the feature store aggregates live.
type history struct {
	ts       []int64
	amounts  []float64
	merchant []string
}

// Featurizer computes, offline and in event order, the features the
// gateway computes live: the same definitions as the plugin and the
// feature set, so a model trained here sees in production what it saw in
// training.
type Featurizer struct {
	risk     map[string]float64
	accounts map[string]*history
}

// NewFeaturizer starts with no history.
func NewFeaturizer() *Featurizer {
	return &Featurizer{risk: MerchantRisk(), accounts: map[string]*history{}}
}

// Features returns t's features given the account's earlier transactions,
// then records t. Windowed aggregates are as of the account's previous
// transaction, as the online store materialises them (it updates an
// account's aggregates when an event arrives, not as the clock moves), so
// training sees exactly what serving will.
func (f *Featurizer) Features(t Transaction) map[string]float64 {
	h := f.accounts[t.Account]
	if h == nil {
		h = &history{}
		f.accounts[t.Account] = h
	}
	agg := map[string]float64{FTxCount1h: 0, FMerchants24h: 0}
	if n := len(h.ts); n > 0 {
		last := h.ts[n-1]
		// Drop what fell out of the longest window (24h) as of then.
		cut := 0
		for cut < n && h.ts[cut] <= last-int64(24*time.Hour/time.Second) {
			cut++
		}
		h.ts, h.amounts, h.merchant = h.ts[cut:], h.amounts[cut:], h.merchant[cut:]
		var count1h int
		var sum, sumSq float64
		distinct := map[string]bool{}
		for i, ts := range h.ts {
			if ts > last-3600 {
				count1h++
			}
			sum += h.amounts[i]
			sumSq += h.amounts[i] * h.amounts[i]
			distinct[h.merchant[i]] = true
		}
		k := float64(len(h.ts))
		mean := sum / k
		agg[FTxCount1h] = float64(count1h)
		agg[FMerchants24h] = float64(len(distinct))
		agg["amount_mean_24h"] = mean
		agg["amount_std_24h"] = math.Sqrt(math.Max(0, sumSq/k-mean*mean))
	}
	out := EventFeatures(t.Amount, t.TS, t.Merchant, agg, f.risk)
	out[FTxCount1h] = agg[FTxCount1h]
	out[FMerchants24h] = agg[FMerchants24h]

	h.ts = append(h.ts, t.TS)
	h.amounts = append(h.amounts, t.Amount)
	h.merchant = append(h.merchant, t.Merchant)
	return out
}

// EventFeatures are the features the enrichment plugin derives from one
// event and the account's aggregates (amount_mean_24h, amount_std_24h).
func EventFeatures(amount float64, ts int64, merchant string, agg map[string]float64, risk map[string]float64) map[string]float64 {
	z := 0.0
	if mean, ok := agg["amount_mean_24h"]; ok {
		z = (amount - mean) / math.Max(agg["amount_std_24h"], 1)
	}
	r, ok := risk[merchant]
	if !ok {
		r = 0.1
	}
	night := 0.0
	if h := time.Unix(ts, 0).UTC().Hour(); h < 6 {
		night = 1
	}
	return map[string]float64{
		FAmountLog:    math.Log1p(math.Max(amount, 0)),
		FAmountZScore: math.Max(-10, math.Min(10, z)),
		FMerchantRisk: r,
		FIsNight:      night,
	}
}
