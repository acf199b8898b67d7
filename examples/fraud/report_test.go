package fraud

import (
	"strings"
	"testing"
	"time"
)

// The report states the live rate against the rate asked, and how soon
// fraud patterns were blocked against a batch job's interval, in numbers.
func TestReportStatesRateAndTimeToBlock(t *testing.T) {
	r := &Report{Decisions: map[string]int{}, RateAsked: 100, BatchInterval: time.Hour, LiveTime: 10 * time.Second}
	scored := func(ep int, ts int64, decision string) Scored {
		return Scored{Tx: Transaction{Fraud: ep != 0, Episode: ep, TS: ts}, Decision: decision, Latency: time.Millisecond}
	}
	// Pattern 1 blocked at its 3rd charge, 40s in; pattern 2 at its 1st;
	// pattern 3 at its 2nd, 90s in; pattern 4 never.
	for _, s := range []Scored{
		scored(1, 1000, "allow"), scored(1, 1020, "review"), scored(1, 1040, "block"), scored(1, 1060, "block"),
		scored(2, 2000, "block"),
		scored(3, 3000, "review"), scored(3, 3090, "block"),
		scored(4, 4000, "allow"),
	} {
		r.record(s)
	}
	for range 992 {
		r.record(scored(0, 0, "allow"))
	}
	r.finish()
	if r.Patterns != 4 || r.PatternsBlocked != 3 || r.ChargesToBlock != 2 || r.TimeToBlock != 40*time.Second {
		t.Errorf("patterns %d, blocked %d, median charge %d, median time %v; want 4, 3, 2, 40s", r.Patterns, r.PatternsBlocked, r.ChargesToBlock, r.TimeToBlock)
	}
	out := r.String()
	for _, want := range []string{
		"live rate             100.0 transactions/s of 100 asked (1000 in 10s)",
		"fraud patterns        3 of 4 blocked while under way: median at charge 2, 40s after the pattern's first charge",
		"against a batch job   run every 1h0m0s, it would flag a pattern up to 1h0m0s after it started",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// Every fraudulent transaction carries its pattern's number; others none.
func TestGeneratorNumbersPatterns(t *testing.T) {
	g := NewGenerator(7, Accounts, HistoryStart)
	g.FraudRate = 0.05
	seen := map[int]int{}
	for range 5000 {
		tx := g.Next(SimGap)
		if tx.Fraud != (tx.Episode != 0) {
			t.Fatalf("transaction %+v: fraud and pattern number disagree", tx)
		}
		seen[tx.Episode]++
	}
	if len(seen) < 10 {
		t.Errorf("%d patterns in 5000 transactions at a 5%% fraud rate", len(seen)-1)
	}
}
