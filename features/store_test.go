package features

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/internal/weirerr"
)

func TestMergeGetReadFeatures(t *testing.T) {
	srv := natstest.Start(t)
	s, reg := openStore(t, srv, false)
	ctx := context.Background()

	if _, ok, err := s.Get(ctx, "acct-1"); err != nil || ok {
		t.Fatalf("unknown entity: ok=%v err=%v", ok, err)
	}
	if _, err := s.Merge(ctx, "acct-1", map[string]any{"country": "DE", "age_days": 400}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Merge(ctx, "acct-1", map[string]any{"age_days": 401, "country": nil, "vip": true})
	if err != nil {
		t.Fatal(err)
	}
	if _, has := got["country"]; has || got["vip"] != true {
		t.Errorf("merge result %v: want country removed (null) and vip set", got)
	}
	testpoll.For(t, time.Second, "ReadFeatures shows the merged object", func() error {
		b, ok, err := s.ReadFeatures(ctx, "acct-1")
		if err != nil {
			return err
		}
		if !ok || string(b) != `{"age_days":401,"vip":true}` {
			return fmt.Errorf("ReadFeatures = %s, found %v", b, ok)
		}
		return nil
	})
	if counterValue(t, reg, "weir_features_store_writes_total", nil) != 2 {
		t.Error("store writes not counted")
	}
	if counterValue(t, reg, "weir_features_cache_hits_total", nil)+counterValue(t, reg, "weir_features_cache_misses_total", nil) == 0 {
		t.Error("cache hits/misses not counted")
	}

	// Entities outside the KV key alphabet round-trip.
	odd := "user 42/é.x*"
	if _, err := s.Merge(ctx, odd, map[string]any{"a": 1}); err != nil {
		t.Fatal(err)
	}
	if v, ok := feature(t, s, odd, "a"); !ok || v != 1.0 {
		t.Errorf("odd entity: %v %v", v, ok)
	}

	for _, bad := range []struct {
		entity string
		obj    map[string]any
	}{
		{"", map[string]any{"a": 1}},
		{strings.Repeat("x", 257), map[string]any{"a": 1}},
		{"ok", map[string]any{"_weir_exp": 1}},
	} {
		if _, err := s.Merge(ctx, bad.entity, bad.obj); weirerr.KindOf(err) != weirerr.Invalid {
			t.Errorf("Merge(%.10q, %v) = %v, want Invalid", bad.entity, bad.obj, err)
		}
	}
	if _, _, err := s.ReadFeatures(ctx, ""); weirerr.KindOf(err) != weirerr.Invalid {
		t.Errorf("ReadFeatures(\"\") = %v, want Invalid", err)
	}
}

func TestTwoReplicasStayCoherent(t *testing.T) {
	srv := natstest.Start(t)
	a, _ := openStore(t, srv, false)
	b, _ := openStore(t, srv, false)
	ctx := context.Background()

	if _, err := a.Merge(ctx, "acct-7", map[string]any{"score": 1}); err != nil {
		t.Fatal(err)
	}
	waitNum(t, b, time.Second, "acct-7", "score", 1, "B reads A's first write")
	// B has it cached now; a second write on A must reach B's cache.
	if _, err := a.Merge(ctx, "acct-7", map[string]any{"score": 2}); err != nil {
		t.Fatal(err)
	}
	waitNum(t, b, time.Second, "acct-7", "score", 2, "B reads A's update within 1s")
	// Concurrent merges on both replicas lose nothing (compare-and-swap).
	done := make(chan error, 2)
	for i, s := range []*Store{a, b} {
		go func() {
			for j := 0; j < 20; j++ {
				if _, err := s.Merge(ctx, "acct-8", map[string]any{string(rune('a'+i)) + string(rune('a'+j)): j}); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	testpoll.For(t, time.Second, "all 40 concurrent fields present", func() error {
		obj, _, err := a.Get(ctx, "acct-8")
		if len(obj) != 40 {
			return fmt.Errorf("%d of 40 fields (read error: %v)", len(obj), err)
		}
		return nil
	})
}

func TestFeatureSubject(t *testing.T) {
	srv := natstest.Start(t)
	s, _ := openStore(t, srv, false)
	// Publishing to the subject is fire and forget: a message sent before
	// the server knows of the store's subscription is dropped. Open returns
	// only once it does (it failed this way under load, "acct-9 has no
	// segment").
	if !srv.Server().GlobalAccount().SubscriptionInterest(SubjectFeatPrefix + "acct-9") {
		t.Fatal("Open returned before the server registered the store's subscription")
	}
	nc, _ := srv.Connect(t)
	if err := nc.Publish(SubjectFeatPrefix+"acct-9", []byte(`{"segment":"gold","limit":500}`)); err != nil {
		t.Fatal(err)
	}
	waitFeature(t, s, 2*time.Second, "acct-9", "segment", "gold", "published features merged")
	// A request gets the merged object back, or the error.
	msg, err := nc.Request(SubjectFeatPrefix+"acct-9", []byte(`{"limit":600}`), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(msg.Data, &got); err != nil || got["limit"] != 600.0 || got["segment"] != "gold" {
		t.Errorf("reply %s", msg.Data)
	}
	msg, err = nc.Request(SubjectFeatPrefix+"acct-9", []byte(`[1,2]`), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg.Data), "not a JSON object") {
		t.Errorf("bad payload reply %s", msg.Data)
	}
}

func TestFeatureSetTTLExpiresOnRead(t *testing.T) {
	srv := natstest.Start(t)
	s, _ := openStore(t, srv, true)
	other, _ := openStore(t, srv, false)
	ctx := context.Background()
	def := `{"key":"k","ttl":"3s","aggregations":[{"name":"n","op":"count","window":"1h"}]}`
	if _, err := s.DefineSet(ctx, "short", []byte(def)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Merge(ctx, "e1", map[string]any{"manual": "stays"}); err != nil {
		t.Fatal(err)
	}
	mustIngest(t, s, "short", map[string]any{"k": "e1"})
	waitNum(t, other, 3*time.Second, "e1", "n", 1, "aggregate visible")
	// Three seconds after the event's arrival the aggregate is gone for
	// readers (the stored object keeps it until the next write), and the
	// manual feature stays.
	testpoll.For(t, 6*time.Second, "aggregate expired", func() error {
		if v, has := feature(t, other, "e1", "n"); has {
			return fmt.Errorf("e1 n = %v", v)
		}
		return nil
	})
	if v, _ := feature(t, other, "e1", "manual"); v != "stays" {
		t.Errorf("manual feature = %v after the set's TTL", v)
	}
	b, _, _ := other.ReadFeatures(ctx, "e1")
	if strings.Contains(string(b), reservedPrefix) {
		t.Errorf("metadata leaked to readers: %s", b)
	}
	// A later event starts the aggregate afresh (the expired state is not
	// resumed).
	mustIngest(t, s, "short", map[string]any{"k": "e1", "x": 1})
	waitNum(t, other, 5*time.Second, "e1", "n", 1, "fresh aggregate after expiry")
}
