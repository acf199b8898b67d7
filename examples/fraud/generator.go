package fraud

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Transaction is one card payment, the raw event a route receives.
type Transaction struct {
	ID       string  `json:"tx_id"`
	Account  string  `json:"account_id"`
	Amount   float64 `json:"amount"`
	Merchant string  `json:"merchant"`
	Country  string  `json:"country"`
	TS       int64   `json:"ts"` // unix seconds
	// Fraud is the ground truth, known to the generator only: it is not
	// sent to the gateway. Episode numbers the fraud pattern (a card
	// test's burst, an account takeover's charges) it belongs to, from 1.
	Fraud   bool `json:"-"`
	Episode int  `json:"-"`
}

// Event is the transaction as the JSON object a client sends.
func (t Transaction) Event() map[string]any {
	return map[string]any{
		"tx_id": t.ID, "account_id": t.Account, "amount": t.Amount,
		"merchant": t.Merchant, "country": t.Country, "ts": t.TS,
	}
}

type account struct {
	id        string
	meanLog   float64 // log-normal spending habit
	sdLog     float64
	favorites []string
	home      string
	ratePerH  float64 // legitimate transactions per hour
}

// Generator produces a deterministic stream of transactions for a seed.
type Generator struct {
	rng       *rand.Rand
	accounts  []account
	merchants []string
	risky     []string
	now       time.Time
	seq       int
	episodes  int
	// FraudRate is the probability that the next event starts a fraud
	// episode. AmountShift multiplies legitimate amounts (drift injection).
	FraudRate   float64
	AmountShift float64
	pending     []Transaction
	mu          sync.Mutex
}

// RouteJSON is the demo route (plugins, decision thresholds, variants) and
// FeatureSetJSON the windowed aggregates over the transaction stream.
var (
	//go:embed route.json
	RouteJSON []byte
	//go:embed featureset.json
	FeatureSetJSON []byte
)

// Merchants and their risk: the enrichment plugin's config carries the same
// table (MerchantRisk).
var (
	safeMerchants  = []string{"grocer", "coffee", "fuel", "pharmacy", "transit", "bookshop", "utility", "restaurant", "cinema", "bakery"}
	riskyMerchants = []string{"giftcards", "crypto-atm", "electronics-online", "wire-transfer", "luxury-goods"}
)

// MerchantRisk is the risk score per merchant: the enrichment plugin's
// config in route.json, the one place it is written down.
func MerchantRisk() map[string]float64 {
	var r struct {
		Plugins []struct {
			Config struct {
				MerchantRisk map[string]float64 `json:"merchant_risk"`
			} `json:"config"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(RouteJSON, &r); err != nil || len(r.Plugins) == 0 {
		panic("examples/fraud/route.json: " + fmt.Sprint(err))
	}
	return r.Plugins[0].Config.MerchantRisk
}

// NewGenerator makes accounts and merchants for seed, starting at start.
func NewGenerator(seed uint64, accounts int, start time.Time) *Generator {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := &Generator{rng: rng, now: start, FraudRate: 0.01, AmountShift: 1, merchants: safeMerchants, risky: riskyMerchants}
	countries := []string{"DE", "FR", "NL", "ES", "IT"}
	for i := 0; i < accounts; i++ {
		a := account{
			id:       fmt.Sprintf("acct-%05d", i),
			meanLog:  math.Log(15 + rng.Float64()*60),
			sdLog:    0.4 + rng.Float64()*0.4,
			home:     countries[rng.IntN(len(countries))],
			ratePerH: 0.2 + rng.Float64()*0.8,
		}
		for j := 0; j < 3; j++ {
			a.favorites = append(a.favorites, safeMerchants[rng.IntN(len(safeMerchants))])
		}
		g.accounts = append(g.accounts, a)
	}
	return g
}

// SetAmountShift multiplies legitimate amounts from now on (drift
// injection); safe to call while another goroutine generates.
func (g *Generator) SetAmountShift(f float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.AmountShift = f
}

// Now is the generator's clock (the timestamp of the last event).
func (g *Generator) Now() time.Time { return g.now }

// Next returns the next transaction; meanGap sets the stream's pace in
// event time. Timestamps never go back, as a real stream's do not.
func (g *Generator) Next(meanGap time.Duration) Transaction {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pending) > 0 {
		t := g.pending[0]
		g.pending = g.pending[1:]
		return t
	}
	for {
		g.now = g.now.Add(time.Duration(g.rng.ExpFloat64() * float64(meanGap)))
		a := g.accounts[g.rng.IntN(len(g.accounts))]
		night := g.now.UTC().Hour() < 6
		fraudRate := g.FraudRate
		if night {
			fraudRate *= 4 // fraudsters work while the card holder sleeps
		}
		if g.rng.Float64() < fraudRate {
			return g.fraudEpisode(a)
		}
		if night && g.rng.Float64() < 0.8 {
			continue // people mostly sleep: few legitimate payments at night
		}
		merchant := a.favorites[g.rng.IntN(len(a.favorites))]
		switch r := g.rng.Float64(); {
		case r < 0.05: // legitimate customers buy gift cards and electronics too
			merchant = g.risky[g.rng.IntN(len(g.risky))]
		case r < 0.25:
			merchant = g.merchants[g.rng.IntN(len(g.merchants))]
		}
		amount := math.Exp(a.meanLog+a.sdLog*g.rng.NormFloat64()) * g.AmountShift
		return g.tx(a, amount, merchant, a.home, g.now.Unix(), false)
	}
}

// fraudEpisode returns the first transaction of a fraud pattern and queues
// the rest.
func (g *Generator) fraudEpisode(a account) Transaction {
	ts := g.now.Unix()
	g.episodes++
	first := len(g.pending)
	if g.rng.IntN(2) == 0 {
		// Card testing: a burst of small charges, half at risky merchants.
		n := 4 + g.rng.IntN(6)
		for i := 0; i < n; i++ {
			m := g.merchants[g.rng.IntN(len(g.merchants))]
			if g.rng.IntN(2) == 0 {
				m = g.risky[g.rng.IntN(len(g.risky))]
			}
			g.pending = append(g.pending, g.tx(a, 1+g.rng.Float64()*4, m, "US", ts+int64(i*20+g.rng.IntN(20)), true))
		}
	} else {
		// Account takeover: one or two large charges, mostly at unusual
		// merchants.
		n := 1 + g.rng.IntN(2)
		for i := 0; i < n; i++ {
			m := g.risky[g.rng.IntN(len(g.risky))]
			if g.rng.Float64() < 0.3 {
				m = g.merchants[g.rng.IntN(len(g.merchants))]
			}
			amount := math.Exp(a.meanLog) * (8 + g.rng.Float64()*20)
			g.pending = append(g.pending, g.tx(a, amount, m, "RU", ts+int64(i*90), true))
		}
	}
	for i := first; i < len(g.pending); i++ {
		g.pending[i].Episode = g.episodes
	}
	// The clock moves past the episode, so later events never go back.
	g.now = time.Unix(g.pending[len(g.pending)-1].TS, 0)
	t := g.pending[0]
	g.pending = g.pending[1:]
	return t
}

func (g *Generator) tx(a account, amount float64, merchant, country string, ts int64, fraud bool) Transaction {
	g.seq++
	return Transaction{
		ID: fmt.Sprintf("tx-%08d", g.seq), Account: a.id, Amount: math.Round(amount*100) / 100,
		Merchant: merchant, Country: country, TS: ts, Fraud: fraud,
	}
}
