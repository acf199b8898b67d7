package drift_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/weirhq/weir/monitor"
	"github.com/weirhq/weir/monitor/drift"
)

// A reference upload, then live traffic whose amounts moved up: the amount
// feature drifts (psi = 5·(.0001-.1)·ln(.001) + .5·ln 6 = 4.35: half the
// values left the lower five deciles for the top one), the country feature
// does not. (In the gateway, events come
// from JetStream through Start instead of Apply.)
func Example() {
	var csv strings.Builder
	csv.WriteString("amount,country\n")
	for i := range 1000 {
		fmt.Fprintf(&csv, "%d,%s\n", i%100, []string{"FR", "DE"}[i%2])
	}
	ref, err := drift.ParseReference([]byte(csv.String()), "text/csv")
	if err != nil {
		panic(err)
	}
	fmt.Println("features:", ref.Features())

	m, err := drift.New(drift.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	defer m.Close(context.Background())
	m.SetReference("fraud", "1", ref)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		m.Apply(&monitor.Event{
			Model: "fraud", Version: "1", Status: 200, TS: t0.Add(time.Duration(i) * time.Millisecond),
			Features: map[string]any{"amount": float64(50 + i%100), "country": []string{"FR", "DE"}[i%2]},
		})
	}
	res, _ := m.Results("fraud", "1")
	for _, f := range res {
		fmt.Printf("%s: %s %s=%.2f drifted=%v over %d values\n", f.Feature, f.Kind, f.Metric, f.Value, f.Drifted, f.Window.Count)
	}
	for _, a := range m.RecentAlerts(10) {
		fmt.Printf("alert: %s/%s %s %s\n", a.Model, a.Version, a.Feature, a.State)
	}
	// Output:
	// features: [amount country]
	// amount: numeric psi=4.35 drifted=true over 1000 values
	// country: categorical psi=0.00 drifted=false over 1000 values
	// alert: fraud/1 amount drifted
}
