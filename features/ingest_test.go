package features

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/internal/weirerr"
)

func tx(acct string, at time.Duration, amount float64, merchant string) map[string]any {
	return map[string]any{"account_id": acct, "ts": t0.Add(at).Format(time.RFC3339), "amount": amount, "merchant": merchant}
}

func mustIngest(t *testing.T, s *Store, set string, evs ...map[string]any) {
	t.Helper()
	acc, rej, err := s.IngestEvents(context.Background(), set, evs)
	if err != nil || acc != len(evs) || rej != 0 {
		t.Fatalf("ingest: accepted %d rejected %d err %v", acc, rej, err)
	}
}

func TestStreamingAggregatesSlide(t *testing.T) {
	srv := natstest.Start(t)
	s, reg := openStore(t, srv, true)
	ctx := context.Background()
	if _, err := s.DefineSet(ctx, "fraud", []byte(fraudSet)); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		at       time.Duration
		amount   float64
		merchant string
		count1h  float64
	}{
		{0, 10, "m1", 1},
		{30 * time.Minute, 30, "m2", 2},
		{70 * time.Minute, 50, "m1", 2}, // t0 is out of the hour, still in the day
	}
	for i, st := range steps {
		mustIngest(t, s, "fraud", tx("acct-1", st.at, st.amount, st.merchant))
		waitApplied(t, s, "fraud", 5*time.Second, int64(i+1), fmt.Sprintf("event %d applied", i))
		waitNum(t, s, 5*time.Second, "acct-1", "tx_count_1h", st.count1h, fmt.Sprintf("tx_count_1h = %v after the event at t0+%s", st.count1h, st.at))
	}
	// Over 24h: amounts 10, 30, 50.
	if got := num(t, s, "acct-1", "amount_mean_24h"); got != 30 {
		t.Errorf("amount_mean_24h = %v, want 30", got)
	}
	if got := num(t, s, "acct-1", "amount_std_24h"); math.Abs(got-math.Sqrt(800.0/3)) > 1e-9 {
		t.Errorf("amount_std_24h = %v, want %v", got, math.Sqrt(800.0/3))
	}
	if got := num(t, s, "acct-1", "merchants_1d"); got != 2 {
		t.Errorf("merchants_1d = %v, want 2", got)
	}
	// The entity's other features survive aggregation writes.
	if _, err := s.Merge(ctx, "acct-1", map[string]any{"country": "FR"}); err != nil {
		t.Fatal(err)
	}
	mustIngest(t, s, "fraud", tx("acct-1", 71*time.Minute, 50, "m3"))
	waitNum(t, s, 5*time.Second, "acct-1", "tx_count_1h", 3, "fourth event")
	obj, ok, err := s.Lookup(ctx, "acct-1")
	if err != nil || !ok || obj["country"] != "FR" || obj["merchants_1d"] != json.Number("3") {
		t.Errorf("Lookup = %v %v %v", obj, ok, err)
	}
	testpoll.For(t, 2*time.Second, "weir_features_events_ingested_total = 4", func() error {
		if n := counterValue(t, reg, "weir_features_events_ingested_total", map[string]string{"set": "fraud"}); n != 4 {
			return fmt.Errorf("weir_features_events_ingested_total = %v", n)
		}
		return nil
	})
	if st := s.Stats("fraud"); st.Accepted != 4 || st.Applied != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestEachOpThroughTheStream(t *testing.T) {
	srv := natstest.Start(t)
	s, _ := openStore(t, srv, true)
	ctx := context.Background()
	def := `{"key":"user","timestamp_field":"t","aggregations":[
	 {"name":"n","op":"count","window":"1h"},
	 {"name":"sum","op":"sum","field":"x","window":"1h"},
	 {"name":"mean","op":"mean","field":"x","window":"1h"},
	 {"name":"std","op":"std","field":"x","window":"1h"},
	 {"name":"min","op":"min","field":"x","window":"1h"},
	 {"name":"max","op":"max","field":"x","window":"1h"},
	 {"name":"last","op":"last","field":"city","window":"1h"},
	 {"name":"distinct","op":"distinct","field":"city","window":"1h"}]}`
	if _, err := s.DefineSet(ctx, "ops", []byte(def)); err != nil {
		t.Fatal(err)
	}
	// Unix seconds, unix milliseconds and RFC 3339 all work as event time;
	// integer keys are entities too.
	body := fmt.Sprintf(`[{"user":7,"t":%d,"x":2,"city":"Oslo"},
	 {"user":7,"t":%d,"x":4,"city":"Rome"},
	 {"user":7,"t":"%s","x":9,"city":"Oslo"}]`,
		t0.Unix(), t0.Add(time.Minute).UnixMilli(), t0.Add(2*time.Minute).Format(time.RFC3339))
	if acc, rej, err := s.Ingest(ctx, "ops", []byte(body)); err != nil || acc != 3 || rej != 0 {
		t.Fatalf("ingest %d %d %v", acc, rej, err)
	}
	waitNum(t, s, 5*time.Second, "7", "n", 3, "three events counted")
	mean := 5.0
	want := map[string]any{"sum": 15.0, "mean": mean, "std": math.Sqrt((9 + 1 + 16) / 3.0), "min": 2.0, "max": 9.0, "last": "Oslo", "distinct": 2.0}
	for name, w := range want {
		got, _ := feature(t, s, "7", name)
		if g, ok := got.(float64); ok && math.Abs(g-w.(float64)) < 1e-9 {
			continue
		}
		if got != w {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
}

func TestMalformedEventsCountedAndSkipped(t *testing.T) {
	srv := natstest.Start(t)
	s, reg := openStore(t, srv, true)
	ctx := context.Background()
	if _, err := s.DefineSet(ctx, "fraud", []byte(fraudSet)); err != nil {
		t.Fatal(err)
	}
	body := `[{"account_id":"a","ts":"2024-05-01T12:00:00Z","amount":5},
	 {"ts":"2024-05-01T12:00:00Z","amount":5},
	 {"account_id":"a","amount":"five"},
	 {"account_id":{"x":1}},
	 {"account_id":"a","ts":"yesterday"},
	 {"account_id":"a","ts":"2024-05-01T12:01:00Z","amount":7}]`
	acc, rej, err := s.Ingest(ctx, "fraud", []byte(body))
	if err != nil || acc != 2 || rej != 4 {
		t.Fatalf("accepted %d rejected %d err %v, want 2 and 4", acc, rej, err)
	}
	// Malformed events published straight to the subject reach the
	// aggregator; they are counted, skipped, and ingestion goes on.
	nc, _ := srv.Connect(t)
	for _, raw := range []string{`not json`, `{"account_id":true}`, `{"account_id":"a","merchant":[1]}`} {
		if err := nc.Publish(SubjectIngestPrefix+"fraud", []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	mustIngest(t, s, "fraud", map[string]any{"account_id": "a", "ts": "2024-05-01T12:02:00Z", "amount": 9})
	waitNum(t, s, 5*time.Second, "a", "tx_count_1h", 3, "valid events applied after bad ones")
	testpoll.For(t, 5*time.Second, "rejections by reason", func() error {
		st := s.Stats("fraud")
		if st.Rejected[ReasonBadJSON] != 1 || st.Rejected[ReasonBadKey] != 2 || st.Rejected[ReasonWrongType] != 2 ||
			st.Rejected[ReasonMissingKey] != 1 || st.Rejected[ReasonBadTimestamp] != 1 {
			return fmt.Errorf("rejected %v", st.Rejected)
		}
		return nil
	})
	st := s.Stats("fraud")
	if len(st.LastErrors) == 0 || st.LastErrors[len(st.LastErrors)-1].Reason != ReasonWrongType ||
		!strings.Contains(st.LastErrors[len(st.LastErrors)-1].Error, "merchant") {
		t.Errorf("last errors %+v", st.LastErrors)
	}
	if v := counterValue(t, reg, "weir_features_rejected_total", map[string]string{"set": "fraud", "reason": ReasonBadKey}); v != 2 {
		t.Errorf("weir_features_rejected_total{reason=bad_key} = %v, want 2", v)
	}
	if _, _, err := s.Ingest(ctx, "nope", []byte(`[]`)); weirerr.KindOf(err) != weirerr.NotFound {
		t.Errorf("unknown set: %v", err)
	}
	if _, _, err := s.Ingest(ctx, "fraud", []byte(`[{`)); weirerr.KindOf(err) != weirerr.Invalid {
		t.Errorf("bad body: %v", err)
	}
}

func TestIngestDeduplicatesRetries(t *testing.T) {
	srv := natstest.Start(t)
	s, _ := openStore(t, srv, true)
	ctx := context.Background()
	if _, err := s.DefineSet(ctx, "fraud", []byte(fraudSet)); err != nil {
		t.Fatal(err)
	}
	body := []byte(`[{"id":"tx-1","account_id":"d","ts":"2024-05-01T12:00:00Z"},{"account_id":"d","ts":"2024-05-01T12:00:05Z"}]`)
	for range 3 { // a client retrying the same request
		if _, _, err := s.Ingest(ctx, "fraud", body); err != nil {
			t.Fatal(err)
		}
	}
	mustIngest(t, s, "fraud", map[string]any{"account_id": "d", "ts": "2024-05-01T12:00:09Z"})
	waitApplied(t, s, "fraud", 5*time.Second, 3, "the marker event applied")
	if got := num(t, s, "d", "tx_count_1h"); got != 3 {
		t.Errorf("tx_count_1h = %v after three identical requests, want 3", got)
	}
}

// ingestN publishes n events for entities e0..e9, one second apart.
func ingestN(t *testing.T, s *Store, from, to int) {
	t.Helper()
	var evs []map[string]any
	for i := from; i < to; i++ {
		evs = append(evs, map[string]any{"id": i, "account_id": fmt.Sprintf("e%d", i%10),
			"ts": t0.Add(time.Duration(i) * time.Second).Unix(), "amount": 1})
	}
	mustIngest(t, s, "fraud", evs...)
}

func total(t *testing.T, s *Store) float64 {
	var sum float64
	for i := 0; i < 10; i++ {
		if v := num(t, s, fmt.Sprintf("e%d", i), "tx_count_1h"); v > 0 {
			sum += v
		}
	}
	return sum
}

// waitTotal waits for total(t, s) to reach want; a timeout reports the
// total it last read.
func waitTotal(t *testing.T, s *Store, timeout time.Duration, want float64, what string) {
	t.Helper()
	testpoll.For(t, timeout, what, func() error {
		if got := total(t, s); got != want {
			return fmt.Errorf("tx_count_1h totals %v of %v; %s", got, want, statsLine(s.Stats("fraud")))
		}
		return nil
	})
}

func TestRestartMidStreamNoDoubleCountNoLoss(t *testing.T) {
	srv := natstest.Start(t)
	ctx := context.Background()
	a, _ := openStore(t, srv, true)
	if _, err := a.DefineSet(ctx, "fraud", []byte(fraudSet)); err != nil {
		t.Fatal(err)
	}
	ingestN(t, a, 0, 1000)
	// Close while the aggregator is (probably) in the middle of the backlog.
	testpoll.For(t, 5*time.Second, "aggregation started", func() error {
		if st := a.Stats("fraud"); st.Applied == 0 {
			return errors.New(statsLine(st))
		}
		return nil
	})
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, _ := openStore(t, srv, true)
	ingestN(t, b, 1000, 2000)
	waitTotal(t, b, 10*time.Second, 2000, "all 2000 events counted exactly once")
}

func TestCrashAfterStateWriteIsNotDoubleCounted(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.StartIn(t, dir)
	ctx := context.Background()
	a, _ := openStore(t, srv, true)
	// The aggregator writes entity states but never its cursor, as if it
	// died after each state write: every event is replayed on restart.
	a.testSkipCursor.Store(true)
	if _, err := a.DefineSet(ctx, "fraud", []byte(fraudSet)); err != nil {
		t.Fatal(err)
	}
	ingestN(t, a, 0, 500)
	waitTotal(t, a, 5*time.Second, 500, "first run applied all")
	// The features are written before the states that de-duplicate a
	// replay: closing as soon as the features read 500 could stop the
	// state writes, and the replay then applied all 500 again (correctly,
	// from no state), which is not the crash this test is about.
	testpoll.For(t, 5*time.Second, "the first run's states written", func() error {
		if st := a.Stats("fraud"); st.Applied != 500 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	_ = a.Close(context.Background())
	// Restart the server too, on the same data.
	srv.Shutdown()
	srv = natstest.StartIn(t, dir)
	b, _ := openStore(t, srv, true)
	ingestN(t, b, 500, 600)
	testpoll.For(t, time.Minute, "the replay to skip the 500 already applied", func() error {
		if st := b.Stats("fraud"); st.Applied != 100 || st.Duplicates != 500 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	if got := total(t, b); got != 600 {
		t.Errorf("total count = %v after replay, want 600", got)
	}
}

func TestTwoAggregatorsShareASet(t *testing.T) {
	srv := natstest.Start(t)
	ctx := context.Background()
	a, _ := openStore(t, srv, true)
	b, _ := openStore(t, srv, true)
	if _, err := a.DefineSet(ctx, "fraud", []byte(fraudSet)); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 2*time.Second, "B learns the set via KV", func() error {
		if b.set("fraud") == nil {
			return errors.New("B has no set fraud")
		}
		return nil
	})
	ingestN(t, a, 0, 300)
	ingestN(t, b, 300, 600)
	waitTotal(t, a, 10*time.Second, 600, "600 events counted once")
	waitTotal(t, b, time.Second, 600, "B reads the same")
	testpoll.For(t, 2*time.Second, "600 applied across replicas", func() error {
		if na, nb := a.Stats("fraud").Applied, b.Stats("fraud").Applied; na+nb != 600 {
			return fmt.Errorf("applied %d+%d", na, nb)
		}
		return nil
	})
}

func TestSetCRUD(t *testing.T) {
	srv := natstest.Start(t)
	s, _ := openStore(t, srv, false)
	other, _ := openStore(t, srv, false)
	ctx := context.Background()
	if _, err := s.DefineSet(ctx, "fraud", []byte(`{"key":"k"}`)); weirerr.KindOf(err) != weirerr.Invalid {
		t.Errorf("invalid set accepted: %v", err)
	}
	fs, err := s.DefineSet(ctx, "fraud", []byte(fraudSet))
	if err != nil || fs.Revision == 0 {
		t.Fatal(fs, err)
	}
	got, err := other.GetSet(ctx, "fraud")
	if err != nil || got.Key != "account_id" || len(got.Aggregations) != 4 {
		t.Fatalf("GetSet on another replica: %+v %v", got, err)
	}
	if _, err := s.DefineSet(ctx, "b-set", []byte(fraudSet)); err != nil {
		t.Fatal(err)
	}
	list, err := other.ListSets(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "b-set" {
		t.Fatalf("ListSets: %v %v", list, err)
	}
	if err := other.DeleteSet(ctx, "fraud"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSet(ctx, "fraud"); weirerr.KindOf(err) != weirerr.NotFound {
		t.Errorf("deleted set: %v", err)
	}
	if err := s.DeleteSet(ctx, "fraud"); weirerr.KindOf(err) != weirerr.NotFound {
		t.Errorf("delete twice: %v", err)
	}
}

func TestTakeoverAfterOwnerDies(t *testing.T) {
	srv := natstest.Start(t)
	ctx := context.Background()
	a, _ := openStore(t, srv, true)
	if _, err := a.DefineSet(ctx, "fraud", []byte(fraudSet)); err != nil {
		t.Fatal(err)
	}
	ingestN(t, a, 0, 200)
	waitTotal(t, a, 5*time.Second, 200, "A aggregates")
	b, _ := openStore(t, srv, true)
	// A dies without releasing its lease: its connection just goes away.
	a.o.NC.Close()
	ingestN(t, b, 200, 400)
	waitTotal(t, b, 3*natsx.LeaseTTL, 400, "B took over after the lease expired")
}

// TestLeaseOnServerTime pins issue 27 item 8: an aggregator that died with
// its clock an hour ahead (its lease record says it holds the set for an
// hour) holds the set only until the server expires its lease.
func TestLeaseOnServerTime(t *testing.T) {
	srv := natstest.Start(t)
	ctx := context.Background()
	_, js := srv.Connect(t)
	leases, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: natsx.LeaseBucket, TTL: natsx.LeaseTTL, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leases.Create(ctx, LeaseName("fraud"), []byte("ghost")); err != nil {
		t.Fatal(err)
	}
	agg, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketAgg, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(map[string]any{"owner": "ghost", "until": time.Now().Add(time.Hour).UnixMilli()})
	if _, err := agg.Create(ctx, "lease.fraud", rec); err != nil {
		t.Fatal(err)
	}
	a, _ := openStore(t, srv, true)
	if _, err := a.DefineSet(ctx, "fraud", []byte(fraudSet)); err != nil {
		t.Fatal(err)
	}
	ingestN(t, a, 0, 200)
	waitTotal(t, a, 3*natsx.LeaseTTL, 200, "A aggregating once the server expired the ghost's lease")
}
