package fraud

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/weirhq/weir/sdk/client"
)

// Scored is one transaction as the gateway decided it.
type Scored struct {
	Tx       Transaction
	Variant  string
	Version  string
	Score    float64
	Decision string
	Latency  time.Duration // end to end, HTTP included
	Sent     time.Time     // when the request was sent
	Err      error
}

// SimGap is the event-time gap between two transactions of the generated
// stream, whatever the rate they are sent at: the models were trained on
// history at this pace, so windowed aggregates (transactions per hour)
// mean the same live as in training.
const SimGap = time.Minute

// Stream sends transactions from gen to the demo route at rate per second
// until ctx ends or max transactions were sent (0: no limit), and feeds
// every transaction to the feature set after it was scored (so features
// describe an account's past, as in training). each sees every result.
func Stream(ctx context.Context, c *client.Client, gen *Generator, rate float64, max int, each func(Scored)) error {
	gap := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(gap)
	defer tick.Stop()
	var (
		mu      sync.Mutex
		pending []map[string]any
		wg      sync.WaitGroup
		slots   = make(chan struct{}, 32) // requests in flight, at most
	)
	flush := func() {
		mu.Lock()
		batch := pending
		pending = nil
		mu.Unlock()
		if len(batch) > 0 {
			_ = c.Send(context.WithoutCancel(ctx), "POST", "/v1/featuresets/"+FeatureSetName+"/ingest", batch, nil)
		}
	}
	defer flush()
	lastFlush := time.Now()
	for sent := 0; max == 0 || sent < max; sent++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick.C:
		}
		tx := gen.Next(SimGap)
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			s := Score(ctx, c, tx)
			mu.Lock()
			pending = append(pending, tx.Event())
			mu.Unlock()
			if each != nil {
				each(s)
			}
		}()
		if time.Since(lastFlush) > 200*time.Millisecond {
			flush()
			lastFlush = time.Now()
		}
	}
	wg.Wait()
	return nil
}

// Score sends one transaction to the demo route.
func Score(ctx context.Context, c *client.Client, tx Transaction) Scored {
	body, _ := json.Marshal(tx.Event())
	start := time.Now()
	raw, err := c.Predict(ctx, RouteName, body)
	s := Scored{Tx: tx, Latency: time.Since(start), Sent: start, Err: err}
	if err != nil {
		return s
	}
	var resp struct {
		Variant string `json:"variant"`
		Version string `json:"version"`
		Outputs struct {
			Score float64 `json:"score"`
		} `json:"outputs"`
		Result struct {
			Decision string `json:"decision"`
		} `json:"result"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		s.Err = err
		return s
	}
	s.Variant, s.Version, s.Score, s.Decision = resp.Variant, resp.Version, resp.Outputs.Score, resp.Result.Decision
	return s
}
