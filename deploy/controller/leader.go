package controller

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/uuid"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// gatewayProbe asks the local gateway whether it is alive
// (GET /v2/health/live). The controller acts only through its own gateway,
// so a controller whose gateway is down must neither hold nor take the
// lease: a standby beside a working gateway takes over.
type gatewayProbe struct {
	url  string
	http *http.Client
}

func newGatewayProbe(gatewayURL string, timeout time.Duration) *gatewayProbe {
	return &gatewayProbe{url: strings.TrimRight(gatewayURL, "/") + "/v2/health/live", http: &http.Client{Timeout: timeout}}
}

// check reports nil when the gateway answers 200.
func (p *gatewayProbe) check(ctx context.Context) error {
	if err := p.get(ctx); err != nil {
		return fmt.Errorf("local gateway %s unreachable: %w", p.url, err)
	}
	return nil
}

func (p *gatewayProbe) get(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// gatedLock is the leader-election Lease lock, refusing to create or renew
// the lease while the local gateway is unreachable: a leader whose gateway
// is down stops renewing and loses the lease after RenewDeadline (the
// manager then exits and the container restarts), and a standby whose
// gateway is down does not take it.
type gatedLock struct {
	resourcelock.Interface
	probe *gatewayProbe
}

func (l gatedLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	if err := l.probe.check(ctx); err != nil {
		return fmt.Errorf("not taking the lease: %w", err)
	}
	return l.Interface.Create(ctx, ler)
}

func (l gatedLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	if ler.HolderIdentity == "" {
		return l.Interface.Update(ctx, ler) // the release on shutdown
	}
	if err := l.probe.check(ctx); err != nil {
		return fmt.Errorf("not renewing the lease: %w", err)
	}
	return l.Interface.Update(ctx, ler)
}

// newGatedLock builds the Lease lock controller-runtime would (same
// identity form, a client timeout under the renew deadline), gated on probe.
func newGatedLock(cfg *rest.Config, o Options, probe *gatewayProbe) (resourcelock.Interface, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("controller: leader identity: %w", err)
	}
	cfg = rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election")
	cfg.Timeout = max(o.RenewDeadline/2, time.Second)
	core, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("controller: leader election client: %w", err)
	}
	coord, err := coordinationv1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("controller: leader election client: %w", err)
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, o.Namespace, o.LeaderElectionID, core, coord,
		resourcelock.ResourceLockConfig{Identity: host + "_" + string(uuid.NewUUID())})
	if err != nil {
		return nil, fmt.Errorf("controller: leader election lock: %w", err)
	}
	return gatedLock{Interface: lock, probe: probe}, nil
}
