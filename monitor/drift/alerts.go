package drift

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/weirhq/weir/monitor"
)

// Alert is published once per threshold crossing on
// weir.alerts.drift.<model>, POSTed to the model's webhook, logged, and kept
// for RecentAlerts.
type Alert struct {
	Model     string    `json:"model"`
	Version   string    `json:"version"`
	Feature   string    `json:"feature"`
	Kind      string    `json:"kind"`
	Metric    string    `json:"metric"`
	Value     float64   `json:"value"`
	Threshold float64   `json:"threshold"`
	TS        time.Time `json:"ts"`
	State     string    `json:"state"` // drifted | recovered
	// Count is the number of values in the window that was judged.
	Count int `json:"count"`
	// Crossing numbers the feature's alerted crossings (1, 2, ...) across
	// the gateways sharing NATS; 0 where there is no shared alert log.
	Crossing uint64 `json:"crossing,omitempty"`
}

type hookJob struct {
	url  string
	body []byte
	a    Alert
}

// alerter fans alerts out. NATS publishing and the ring are synchronous and
// cheap; webhooks go through a bounded queue to one sender goroutine so a
// slow receiver never holds up event processing.
type alerter struct {
	nc     *nats.Conn
	gate   func() bool // nil: always speak
	log    *slog.Logger
	met    *metrics
	client *http.Client

	mu     sync.Mutex
	ring   []Alert
	next   int
	n      int
	closed bool

	hooks chan hookJob
	wg    sync.WaitGroup
}

func newAlerter(o Options, log *slog.Logger, met *metrics) *alerter {
	a := &alerter{
		log:    log,
		met:    met,
		client: &http.Client{Timeout: o.WebhookTimeout},
		ring:   make([]Alert, o.RecentAlerts),
		hooks:  make(chan hookJob, o.WebhookQueue),
		gate:   o.AlertGate,
	}
	if o.JS != nil {
		a.nc = o.JS.Conn()
	}
	a.wg.Add(1)
	go a.sendHooks()
	return a
}

// emit publishes al if the gate lets this process speak, and keeps it for
// RecentAlerts either way.
func (a *alerter) emit(al Alert, webhook string) {
	a.remember(al)
	if a.gate != nil && !a.gate() {
		// Another gateway holds the alert lease and speaks for this crossing.
		a.log.Debug("drift alert left to the alert lease holder", "state", al.State, "model", al.Model,
			"version", al.Version, "feature", al.Feature)
		return
	}
	a.publish(al, webhook)
}

// publish logs, counts, publishes and POSTs al.
func (a *alerter) publish(al Alert, webhook string) {
	body, err := json.Marshal(al)
	if err != nil { // cannot happen: metrics are finite
		a.log.Error("drift: encode alert", "err", err)
		return
	}
	a.log.Warn("drift alert", "state", al.State, "model", al.Model, "version", al.Version,
		"feature", al.Feature, "metric", al.Metric, "value", al.Value, "threshold", al.Threshold, "crossing", al.Crossing)
	a.met.alerts.WithLabelValues(al.Model).Inc()
	if a.nc != nil {
		if err := a.nc.Publish(monitor.SubjectDriftPrefix+al.Model, body); err != nil {
			a.log.Warn("drift: publish alert", "model", al.Model, "err", err)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if webhook == "" || a.closed {
		return
	}
	select {
	case a.hooks <- hookJob{url: webhook, body: body, a: al}:
	default:
		a.met.webhookFailure.WithLabelValues(al.Model).Inc()
		a.log.Warn("drift: webhook queue full, alert not delivered", "model", al.Model, "webhook", webhook)
	}
}

func (a *alerter) sendHooks() {
	defer a.wg.Done()
	for job := range a.hooks {
		if err := a.post(job); err != nil {
			a.met.webhookFailure.WithLabelValues(job.a.Model).Inc()
			a.log.Warn("drift: webhook failed", "model", job.a.Model, "webhook", job.url, "err", err)
		}
	}
}

func (a *alerter) post(job hookJob) error {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, job.url, bytes.NewReader(job.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// remember keeps al for RecentAlerts only.
func (a *alerter) remember(al Alert) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ring[a.next] = al
	a.next = (a.next + 1) % len(a.ring)
	a.n = min(a.n+1, len(a.ring))
}

// close stops accepting webhooks and waits for the queued ones (each bounded
// by WebhookTimeout).
func (a *alerter) close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	close(a.hooks)
	a.mu.Unlock()
	a.wg.Wait()
}

// recent returns up to n alerts, newest first.
func (a *alerter) recent(n int) []Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	n = min(n, a.n)
	out := make([]Alert, 0, max(n, 0))
	for i := 1; i <= n; i++ {
		out = append(out, a.ring[(a.next-i+len(a.ring))%len(a.ring)])
	}
	return out
}

// RecentAlerts returns the last n alerts (at most Options.RecentAlerts),
// newest first.
func (m *Monitor) RecentAlerts(n int) []Alert { return m.alerter.recent(n) }
