package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/internal/weirerr"
)

func openStore(t *testing.T, s *natstest.Server) *Store {
	t.Helper()
	_, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := OpenStore(ctx, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	return st
}

func TestStoreTwoReplicas(t *testing.T) {
	srv := natstest.Start(t)
	a, b := openStore(t, srv), openStore(t, srv)
	ctx := context.Background()

	changed := make(chan string, 16)
	unregister := b.OnChange(func(name string) { changed <- name })
	defer unregister()

	r, err := a.Put(ctx, "fraud.v1", []byte(twoWay))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := a.Get("fraud.v1"); !ok || got != r || r.Revision() == 0 || r.UpdatedAt().IsZero() {
		t.Fatalf("Put did not read its own write: %v %v", got, ok)
	}
	// b sees it through the KV watch.
	testpoll.For(t, 2*time.Second, "route fraud.v1 on the second store", func() error {
		got, ok := b.Get("fraud.v1")
		if !ok {
			return errors.New("the second store has no fraud.v1")
		}
		if got.Revision() != r.Revision() {
			return fmt.Errorf("the second store has revision %d, want %d", got.Revision(), r.Revision())
		}
		return nil
	})
	select {
	case name := <-changed:
		if name != "fraud.v1" {
			t.Fatalf("OnChange got %q", name)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("OnChange not called")
	}
	// GET output round-trips.
	out, _ := json.Marshal(r)
	var m map[string]any
	_ = json.Unmarshal(out, &m)
	if m["name"] != "fraud.v1" || m["revision"] == nil || m["updated_at"] == nil {
		t.Fatalf("GET shape: %s", out)
	}
	if _, err := b.Put(ctx, "fraud.v1", out); err != nil {
		t.Fatalf("PUT of GET output: %v", err)
	}

	// References: weight > 0 or shadow; floating versions only match latest.
	if _, err := a.Put(ctx, "other", []byte(`{"variants":[{"name":"a","model":"fraud","weight":100},{"name":"b","model":"fraud","version":"2","weight":0}],"shadow":{"model":"x","version":"1","percent":1},"plugins":[{"name":"enrich","version":"1"}]}`)); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 2*time.Second, "route other on the second store", func() error {
		if _, ok := b.Get("other"); !ok {
			return errors.New("the second store has no route other")
		}
		return nil
	})
	for _, c := range []struct {
		model, version string
		want           []string
	}{
		{"fraud", "1", []string{"fraud.v1"}},
		{"fraud", "2", []string{"fraud.v1"}},
		{"fraud", "latest", []string{"other"}},
		{"x", "1", []string{"other"}},
		{"fraud", "3", nil},
	} {
		if got := b.References(c.model, c.version); !slices.Equal(got, c.want) {
			t.Errorf("References(%s, %s) = %v, want %v", c.model, c.version, got, c.want)
		}
	}
	if got := b.PluginReferences("enrich", "1"); !slices.Equal(got, []string{"other"}) {
		t.Errorf("PluginReferences = %v", got)
	}
	if names := len(b.List()); names != 2 {
		t.Errorf("List has %d routes", names)
	}

	// Delete on b, gone on a.
	if err := b.Delete(ctx, "fraud.v1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Get("fraud.v1"); ok {
		t.Fatal("deleted route still served by the deleting store")
	}
	testpoll.For(t, 2*time.Second, "route fraud.v1 deleted on the first store", func() error {
		if got, ok := a.Get("fraud.v1"); ok {
			return fmt.Errorf("the first store still has fraud.v1 at revision %d", got.Revision())
		}
		return nil
	})
	if err := b.Delete(ctx, "fraud.v1"); weirerr.KindOf(err) != weirerr.NotFound {
		t.Fatalf("delete of a missing route: %v", err)
	}
	if _, err := a.Put(ctx, "bad", []byte(`{"variants":[]}`)); weirerr.KindOf(err) != weirerr.Invalid {
		t.Fatalf("invalid put: %v", err)
	}
	if _, ok := a.Get("bad"); ok {
		t.Fatal("invalid route stored")
	}
}

func TestStoreReloadsOnOpen(t *testing.T) {
	srv := natstest.Start(t)
	a := openStore(t, srv)
	if _, err := a.Put(context.Background(), "r1", []byte(twoWay)); err != nil {
		t.Fatal(err)
	}
	b := openStore(t, srv)
	if _, ok := b.Get("r1"); !ok {
		t.Fatal("a new store did not load existing routes before returning")
	}
}

func TestUpdateVariantsCAS(t *testing.T) {
	srv := natstest.Start(t)
	a, b := openStore(t, srv), openStore(t, srv)
	ctx := context.Background()
	if _, err := a.Put(ctx, "r", []byte(`{"variants":[{"name":"stable","model":"m","version":"1","weight":100},{"name":"canary","model":"m","version":"2","weight":0}]}`)); err != nil {
		t.Fatal(err)
	}
	testpoll.For(t, 2*time.Second, "route r on the second store", func() error {
		if _, ok := b.Get("r"); !ok {
			return errors.New("the second store has no route r")
		}
		return nil
	})

	// Two stores each move 1 point from stable to canary 10 times, at the
	// same time: CAS must not lose any of the 20 increments.
	var wg sync.WaitGroup
	var errs atomic.Int32
	for _, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				err := s.UpdateVariants(ctx, "r", func(vs []Variant) ([]Variant, error) {
					vs[0].Weight--
					vs[1].Weight++
					return vs, nil
				})
				if err != nil {
					t.Error(err)
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if errs.Load() > 0 {
		t.FailNow()
	}
	// The last write may have come from b: wait for a to see it.
	testpoll.For(t, 2*time.Second, "the first store to see canary at weight 20 at the latest revision", func() error {
		r, _ := a.Get("r")
		v, _ := r.Variant("canary")
		if latest := mustLatest(t, b).Revision(); v.Weight != 20 || r.Revision() != latest {
			return fmt.Errorf("canary at weight %d at revision %d; the second store is at revision %d", v.Weight, r.Revision(), latest)
		}
		return nil
	})
	if r, _ := a.Get("r"); r.Variants()[0].Weight != 80 {
		t.Fatalf("stable weight %d after 20 CAS decrements", r.Variants()[0].Weight)
	}
	// An invalid result is rejected and nothing is written.
	err := a.UpdateVariants(ctx, "r", func(vs []Variant) ([]Variant, error) {
		vs[1].Weight = 50
		return vs, nil
	})
	if weirerr.KindOf(err) != weirerr.Invalid {
		t.Fatalf("invalid update: %v", err)
	}
	sentinel := errors.New("stop")
	if err := a.UpdateVariants(ctx, "r", func(vs []Variant) ([]Variant, error) { return nil, sentinel }); !errors.Is(err, sentinel) {
		t.Fatalf("fn error not returned: %v", err)
	}
	if err := a.UpdateVariants(ctx, "nope", func(vs []Variant) ([]Variant, error) { return vs, nil }); weirerr.KindOf(err) != weirerr.NotFound {
		t.Fatalf("unknown route: %v", err)
	}
}

// Readers keep using the *Route they loaded while writers replace it; run
// with -race.
func TestAtomicSwapConcurrentReaders(t *testing.T) {
	srv := natstest.Start(t)
	st := openStore(t, srv)
	ctx := context.Background()
	body := func(w int) []byte {
		return []byte(fmt.Sprintf(`{"variants":[{"name":"stable","model":"m","weight":%d},{"name":"canary","model":"m","weight":%d}],"sticky":{"header":"X-User-Id"}}`, 100-w, w))
	}
	if _, err := st.Put(ctx, "r", body(0)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r, ok := st.Get("r")
				if !ok {
					t.Error("route vanished during updates")
					return
				}
				v := r.Choose(fmt.Sprint(g, i), true, nil)
				// The chosen variant belongs to the route value we hold.
				if mine, ok := r.Variant(v.Name); !ok || mine != v {
					t.Error("variant from another route value")
					return
				}
				reads.Add(1)
				runtime.Gosched() // leave the 2 CPUs to the writer and watcher too
			}
		}()
	}
	for w := 1; w <= 30; w++ {
		if _, err := st.Put(ctx, "r", body(w)); err != nil {
			t.Fatal(err)
		}
	}
	testpoll.For(t, 5*time.Second, "more than 1000 concurrent reads", func() error {
		if n := reads.Load(); n <= 1000 {
			return fmt.Errorf("%d reads", n)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	r, _ := st.Get("r")
	if v, _ := r.Variant("canary"); v.Weight != 30 {
		t.Fatalf("final weight %d", v.Weight)
	}
}

func mustLatest(t *testing.T, s *Store) *Route {
	t.Helper()
	r, ok := s.Get("r")
	if !ok {
		t.Fatal("route r missing")
	}
	return r
}

func BenchmarkStoreGet(b *testing.B) {
	srv := natstest.Start(b)
	_, js := srv.Connect(b)
	st, err := OpenStore(context.Background(), js, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close(context.Background())
	if _, err := st.Put(context.Background(), "fraud", []byte(twoWay)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, _ := st.Get("fraud")
		_ = r.Choose("user-1", true, nil)
	}
}
