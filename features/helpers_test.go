package features

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
)

type testOpt func(*Options)

// openStore opens a Store on its own connection to srv, closed at test end.
func openStore(t testing.TB, srv *natstest.Server, aggregate bool, opts ...testOpt) (*Store, *prometheus.Registry) {
	t.Helper()
	nc, js := srv.Connect(t)
	reg := prometheus.NewRegistry()
	o := Options{NC: nc, JS: js, Registerer: reg, Aggregate: aggregate,
		FlushInterval: 20 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, reg
}

// feature reads one feature of an entity (numbers as float64), or false.
func feature(t testing.TB, s *Store, entity, name string) (any, bool) {
	t.Helper()
	obj, ok, err := s.Get(context.Background(), entity)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return nil, false
	}
	v, ok := obj[name]
	if n, isNum := v.(json.Number); isNum {
		f, _ := n.Float64()
		return f, ok
	}
	return v, ok
}

// waitFeature waits for entity's feature name on s to read want (numbers
// as float64); a timeout reports the value it last read.
func waitFeature(t testing.TB, s *Store, timeout time.Duration, entity, name string, want any, what string) {
	t.Helper()
	testpoll.For(t, timeout, what, func() error {
		v, ok := feature(t, s, entity, name)
		if !ok {
			return fmt.Errorf("%s has no %s", entity, name)
		}
		if v != want {
			return fmt.Errorf("%s %s = %v", entity, name, v)
		}
		return nil
	})
}

// waitNum is waitFeature for a number.
func waitNum(t testing.TB, s *Store, timeout time.Duration, entity, name string, want float64, what string) {
	t.Helper()
	waitFeature(t, s, timeout, entity, name, want, what)
}

// waitApplied waits for s to have applied want events of set; a timeout
// reports the set's last stats.
func waitApplied(t testing.TB, s *Store, set string, timeout time.Duration, want int64, what string) {
	t.Helper()
	testpoll.For(t, timeout, what, func() error {
		if st := s.Stats(set); st.Applied != want {
			return fmt.Errorf("%d of %d applied; %s", st.Applied, want, statsLine(st))
		}
		return nil
	})
}

// statsLine is a set's stats in one line, without the last errors.
func statsLine(st Stats) string {
	return fmt.Sprintf("accepted %d, applied %d, duplicates %d, late %d, rejected %v, %d last errors",
		st.Accepted, st.Applied, st.Duplicates, st.Late, st.Rejected, len(st.LastErrors))
}

func num(t testing.TB, s *Store, entity, name string) float64 {
	t.Helper()
	v, ok := feature(t, s, entity, name)
	if !ok {
		return -1
	}
	f, isNum := v.(float64)
	if !isNum {
		return -1
	}
	return f
}

func counterValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
