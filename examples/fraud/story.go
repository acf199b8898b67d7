package fraud

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/weirhq/weir/sdk/client"
)

// StoryOptions set the pace of the demo story. The defaults take about a
// minute; tests shrink them.
type StoryOptions struct {
	PluginDir string        // Wasm files of Plugins
	History   int           // transactions backfilled before live traffic (default 20000)
	Rate      float64       // live transactions per second (default 100)
	Interval  time.Duration // canary step interval (default 5s)
	// BatchInterval is the batch scoring job the report compares with
	// (default 1h): it sees a fraud pattern up to this long after it.
	BatchInterval time.Duration
	Out           io.Writer // progress lines
}

func (o *StoryOptions) defaults() {
	if o.History == 0 {
		o.History = 20000
	}
	if o.Rate == 0 {
		o.Rate = 100
	}
	if o.Interval == 0 {
		o.Interval = 5 * time.Second
	}
	if o.BatchInterval == 0 {
		o.BatchInterval = time.Hour
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
}

// Report is what the story measured.
type Report struct {
	Requests     int
	Errors       int
	FirstError   string
	P50, P99     time.Duration // decision latency, end to end, HTTP included
	Decisions    map[string]int
	FraudFlagged int // fraudulent transactions decided review or block
	Fraud        int
	Canary       string // outcome of the v2 canary
	DriftAlert   time.Duration
	DriftFeature string
	SecondCanary string // outcome of the canary started during drift
	SecondReason string
	// Live traffic: the rate asked, and the rate achieved over LiveTime.
	RateAsked float64
	LiveTime  time.Duration
	// Fraud patterns seen live, those with a charge blocked, and over
	// those (medians) the blocked charge's number in its pattern (1: the
	// first) and its time after the pattern's first charge, on the
	// pattern's own clock (the transactions' ts).
	Patterns, PatternsBlocked int
	ChargesToBlock            int
	TimeToBlock               time.Duration
	BatchInterval             time.Duration
	recordedMutex             sync.Mutex
	latencies                 []time.Duration
	patterns                  map[int]*pattern
}

// pattern is what the report follows of one fraud pattern.
type pattern struct {
	start      int64 // ts of its first charge seen
	charges    []int64
	firstBlock int64 // ts of its first blocked charge (0: none yet)
}

func (r *Report) record(s Scored) {
	r.recordedMutex.Lock()
	defer r.recordedMutex.Unlock()
	r.Requests++
	if s.Err != nil {
		r.Errors++
		if r.FirstError == "" {
			r.FirstError = s.Err.Error()
		}
		return
	}
	r.latencies = append(r.latencies, s.Latency)
	r.Decisions[s.Decision]++
	if ep := s.Tx.Episode; ep != 0 {
		if r.patterns == nil {
			r.patterns = map[int]*pattern{}
		}
		p := r.patterns[ep]
		if p == nil {
			p = &pattern{start: s.Tx.TS}
			r.patterns[ep] = p
		}
		p.start = min(p.start, s.Tx.TS)
		p.charges = append(p.charges, s.Tx.TS)
		if s.Decision == "block" && (p.firstBlock == 0 || s.Tx.TS < p.firstBlock) {
			p.firstBlock = s.Tx.TS
		}
	}
	if s.Tx.Fraud {
		r.Fraud++
		if s.Decision == "review" || s.Decision == "block" {
			r.FraudFlagged++
		}
	}
}

func (r *Report) finish() {
	sort.Slice(r.latencies, func(i, j int) bool { return r.latencies[i] < r.latencies[j] })
	if n := len(r.latencies); n > 0 {
		r.P50, r.P99 = r.latencies[n/2], r.latencies[n*99/100]
	}
	var charges []int
	var times []time.Duration
	r.Patterns, r.PatternsBlocked = len(r.patterns), 0
	for _, p := range r.patterns {
		if p.firstBlock == 0 {
			continue
		}
		r.PatternsBlocked++
		n := 0
		for _, ts := range p.charges {
			if ts <= p.firstBlock {
				n++
			}
		}
		charges = append(charges, n)
		times = append(times, time.Duration(p.firstBlock-p.start)*time.Second)
	}
	if len(times) > 0 {
		slices.Sort(charges)
		slices.Sort(times)
		r.ChargesToBlock, r.TimeToBlock = charges[len(charges)/2], times[len(times)/2]
	}
}

// Rate is the live transactions per second achieved.
func (r *Report) Rate() float64 {
	if r.LiveTime <= 0 {
		return 0
	}
	return float64(r.Requests) / r.LiveTime.Seconds()
}

// String is the report a person reads at the end of `make demo`.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "weir fraud demo report\n")
	fmt.Fprintf(&b, "  transactions scored   %d (%d errors)\n", r.Requests, r.Errors)
	if r.RateAsked > 0 {
		fmt.Fprintf(&b, "  live rate             %.1f transactions/s of %g asked (%d in %v)\n", r.Rate(), r.RateAsked, r.Requests, r.LiveTime.Round(time.Millisecond))
	}
	if r.FirstError != "" {
		fmt.Fprintf(&b, "  first error           %s\n", r.FirstError)
	}
	fmt.Fprintf(&b, "  decision latency      p50 %v, p99 %v (end to end, HTTP included)\n", r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond))
	fmt.Fprintf(&b, "  decisions             allow %d, review %d, block %d\n", r.Decisions["allow"], r.Decisions["review"], r.Decisions["block"])
	if r.Fraud > 0 {
		fmt.Fprintf(&b, "  fraud caught          %d of %d fraudulent transactions reviewed or blocked (%.0f%%)\n", r.FraudFlagged, r.Fraud, 100*float64(r.FraudFlagged)/float64(r.Fraud))
	}
	if r.Patterns > 0 {
		fmt.Fprintf(&b, "  fraud patterns        %d of %d blocked while under way", r.PatternsBlocked, r.Patterns)
		if r.PatternsBlocked > 0 {
			fmt.Fprintf(&b, ": median at charge %d, %v after the pattern's first charge (its own clock)", r.ChargesToBlock, r.TimeToBlock)
		}
		fmt.Fprintf(&b, "\n")
		if r.BatchInterval > 0 {
			fmt.Fprintf(&b, "  against a batch job   run every %v, it would flag a pattern up to %v after it started, every charge through\n", r.BatchInterval, r.BatchInterval)
		}
	}
	fmt.Fprintf(&b, "  canary fraud@2        %s\n", r.Canary)
	fmt.Fprintf(&b, "  drift                 alert on %s %v after amounts shifted\n", r.DriftFeature, r.DriftAlert.Round(time.Millisecond))
	fmt.Fprintf(&b, "  canary fraud@3        %s (%s)\n", r.SecondCanary, r.SecondReason)
	return b.String()
}

// RunStory plays the fraud case on a running gateway: install the demo,
// backfill history so features are warm, stream live transactions, roll
// fraud@2 out by canary (it should promote itself), shift the amounts
// (drift should raise an alert), and roll out fraud@3 into the drift (it
// should roll itself back).
func RunStory(ctx context.Context, c *client.Client, o StoryOptions) (*Report, error) {
	o.defaults()
	say := func(format string, args ...any) { fmt.Fprintf(o.Out, format+"\n", args...) }
	rep := &Report{Decisions: map[string]int{}, RateAsked: o.Rate, BatchInterval: o.BatchInterval}

	say("training fraud@1, fraud@2 and fraud@3 on generated history...")
	t, err := TrainAll()
	if err != nil {
		return nil, err
	}
	// fraud@3 is really worse: miscalibrated (+3 on the logit), it would
	// send many legitimate customers to review or block. Its inputs drift
	// no more than the stable version's; its answers drift from the stable
	// version's, which the relative drift gate sees.
	v3 := Train(History(3, 20000, FeaturesV2), 300)
	v3.Bias += 3
	onnx3, err := v3.ONNX(ModelName)
	if err != nil {
		return nil, err
	}
	if err := Setup(ctx, c, t, o.PluginDir, true, o.Out); err != nil {
		return nil, err
	}
	if err := pushIfMissing(ctx, c, "3", onnx3, ReferenceCSV(History(3, 20000, FeaturesV2), 5000)); err != nil {
		return nil, err
	}

	gen := NewGenerator(1, Accounts, HistoryStart)
	say("backfilling %d historical transactions into feature set %s...", o.History, FeatureSetName)
	if err := Backfill(ctx, c, gen, o.History); err != nil {
		return nil, err
	}

	// Live traffic runs in the background for the rest of the story.
	live, stopLive := context.WithCancel(ctx)
	defer stopLive()
	done := make(chan error, 1)
	liveStart := time.Now()
	go func() { done <- Stream(live, c, gen, o.Rate, 0, rep.record) }()

	say("canary: fraud@2 (adds streaming aggregates) on route %s, steps 10,50,100 every %v", RouteName, o.Interval)
	rep.Canary, _, err = canary(ctx, c, "2", o.Interval, 20, say)
	if err != nil {
		return nil, err
	}

	say("drift: legitimate amounts now 4x larger...")
	since := time.Now()
	gen.SetAmountShift(4)
	// Alerts come within seconds on a quiet machine (rep.DriftAlert says
	// how many); the limit only has to hold on a loaded one.
	rep.DriftFeature, err = waitAlert(ctx, c, since, max(30*o.Interval, 2*time.Minute))
	if err != nil {
		return nil, err
	}
	rep.DriftAlert = time.Since(since)
	say("drift alert on %s after %v", rep.DriftFeature, rep.DriftAlert.Round(time.Millisecond))

	// Judged relative to the stable version, the input drift both see does
	// not count against fraud@3; its miscalibrated answers do. It needs
	// enough requests per step for its windows to be judged (100 values).
	say("canary: fraud@3 (miscalibrated) into the drifted traffic, max_drift %v relative to stable", DriftConfig["threshold"])
	rep.SecondCanary, rep.SecondReason, err = canary(ctx, c, "3", o.Interval, 150, say)
	if err != nil {
		return nil, err
	}
	stopLive()
	<-done
	rep.LiveTime = time.Since(liveStart)
	rep.finish()
	return rep, nil
}

func pushIfMissing(ctx context.Context, c *client.Client, version string, onnx, ref []byte) error {
	t := &Trained{ONNXv1: onnx, RefV1: ref}
	list, err := c.ListModels(ctx)
	if err != nil {
		return err
	}
	for _, m := range list {
		for _, v := range m.Versions {
			if m.Name == ModelName && v.Version == version {
				return nil
			}
		}
	}
	return pushVersion(ctx, c, version, t.ONNXv1, t.RefV1)
}

// Backfill ingests n transactions from gen as history and waits until the
// feature set has aggregated them, so features are warm before live
// traffic.
func Backfill(ctx context.Context, c *client.Client, gen *Generator, n int) error {
	var before struct {
		Stats struct {
			Applied int64 `json:"applied"`
		} `json:"stats"`
	}
	if err := c.Get(ctx, "/v1/featuresets/"+FeatureSetName, &before); err != nil {
		return err
	}
	batch := make([]map[string]any, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, gen.Next(SimGap).Event())
		if len(batch) == cap(batch) || i == n-1 {
			if err := c.Send(ctx, "POST", "/v1/featuresets/"+FeatureSetName+"/ingest", batch, nil); err != nil {
				return fmt.Errorf("backfill: %w", err)
			}
			batch = batch[:0]
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var st struct {
			Stats struct {
				Applied int64 `json:"applied"`
			} `json:"stats"`
		}
		if err := c.Get(ctx, "/v1/featuresets/"+FeatureSetName, &st); err != nil {
			return err
		}
		if st.Stats.Applied-before.Stats.Applied >= int64(n) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("backfill: %d of %d events aggregated after a minute", st.Stats.Applied-before.Stats.Applied, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// canary rolls version out on the demo route and follows it to the end.
func canary(ctx context.Context, c *client.Client, version string, interval time.Duration, minRequests int, say func(string, ...any)) (outcome, reason string, err error) {
	spec, _ := json.Marshal(map[string]any{
		"model": ModelName, "version": version, "steps": []int{10, 50, 100}, "interval": interval.String(),
		"max_error_rate": 0.02, "max_p99_ms": 500, "max_drift": DriftConfig["threshold"], "min_requests": minRequests,
	})
	if _, err := c.StartRollout(ctx, RouteName, spec); err != nil {
		return "", "", fmt.Errorf("start canary of %s@%s: %w", ModelName, version, err)
	}
	last := ""
	deadline := time.Now().Add(20 * interval * 3)
	for time.Now().Before(deadline) {
		var st struct {
			State        string `json:"state"`
			Weight       int    `json:"weight"`
			Reason       string `json:"reason"`
			RouteApplied bool   `json:"route_applied"`
		}
		if err := c.Get(ctx, "/v1/routes/"+RouteName+"/rollout", &st); err != nil {
			return "", "", err
		}
		if line := fmt.Sprintf("%s at %d%%: %s", st.State, st.Weight, st.Reason); line != last {
			say("  %s", line)
			last = line
		}
		if (st.State == "promoted" || st.State == "rolled_back") && st.RouteApplied {
			return st.State, st.Reason, nil
		}
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-time.After(interval / 10):
		}
	}
	return "", "", fmt.Errorf("canary of %s@%s did not finish in time", ModelName, version)
}

// waitAlert polls the gateway's recent alerts for a drift alert raised
// after since.
func waitAlert(ctx context.Context, c *client.Client, since time.Time, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var out struct {
			Alerts []struct {
				Feature string    `json:"feature"`
				State   string    `json:"state"`
				TS      time.Time `json:"ts"`
				Model   string    `json:"model"`
			} `json:"alerts"`
		}
		if err := c.Get(ctx, "/v1/alerts?n=20", &out); err != nil {
			return "", err
		}
		for _, a := range out.Alerts {
			if a.Model == ModelName && a.State == "drifted" && a.TS.After(since) {
				return a.Feature, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("no drift alert within %v of the shift", timeout)
}
