package natstest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/testpoll"
)

// Cluster is a JetStream cluster of embedded servers in the test process,
// routed over loopback, every node (routes included) requiring User and
// Password. Nodes keep their ports and stores across Stop and Restart.
type Cluster struct {
	User, Password string
	nodes          []*natsx.Embedded
	opts           []natsx.Options
	clientAddrs    []string
}

// StartCluster runs an n-node cluster and waits until its JetStream meta
// group has a leader; everything stops when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartClusterPart(t, n, n)
}

// StartClusterPart runs a cluster of the first up of n configured nodes,
// as when a cluster grows by servers that come up later; Restart(i)
// starts node i >= up, which then joins.
func StartClusterPart(t testing.TB, n, up int) *Cluster {
	t.Helper()
	c := &Cluster{User: "weir", Password: natsx.NewSecret()}
	routes := make([]string, n)
	for i := range n {
		routes[i] = freeAddr(t)
		c.clientAddrs = append(c.clientAddrs, freeAddr(t))
	}
	base := t.TempDir()
	for i := range n {
		c.opts = append(c.opts, natsx.Options{
			Listen:     c.clientAddrs[i],
			StoreDir:   filepath.Join(base, fmt.Sprintf("n%d", i)),
			ServerName: fmt.Sprintf("n%d", i),
			User:       c.User, Password: c.Password,
			Cluster: &natsx.ClusterOptions{Name: "weir-test", Listen: routes[i], Routes: routes[:max(i+1, up)]},
		})
	}
	c.nodes = make([]*natsx.Embedded, n)
	errs := make(chan error, up)
	for i := range up {
		go func() {
			e, err := natsx.Start(c.opts[i])
			c.nodes[i] = e
			errs <- err
		}()
	}
	for range up {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, e := range c.nodes {
			if e != nil {
				e.Shutdown()
			}
		}
	})
	c.WaitHealthy(t, 30*time.Second)
	return c
}

// URL is every node's client URL, comma-separated, each with credentials.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.clientAddrs))
	for i, a := range c.clientAddrs {
		urls[i] = fmt.Sprintf("nats://%s:%s@%s", c.User, c.Password, a)
	}
	return strings.Join(urls, ",")
}

// Addr is node i's client host:port.
func (c *Cluster) Addr(i int) string { return c.clientAddrs[i] }

// Node is node i (nil while stopped).
func (c *Cluster) Node(i int) *natsx.Embedded { return c.nodes[i] }

// ConsumerNode is the running node (index) leading the first consumer on
// stream that match accepts, to kill the node that holds it.
func (c *Cluster) ConsumerNode(js jetstream.JetStream, stream string, match func(jetstream.ConsumerConfig) bool) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return -1, err
	}
	l := st.ListConsumers(ctx)
	var infos []*jetstream.ConsumerInfo
	for info := range l.Info() { // read to the end: the lister's goroutine ends then
		infos = append(infos, info)
	}
	for _, info := range infos {
		if !match(info.Config) || info.Cluster == nil {
			continue
		}
		for i, n := range c.nodes {
			if n != nil && n.Server().Name() == info.Cluster.Leader {
				return i, nil
			}
		}
		return -1, fmt.Errorf("consumer %s is led by %q, not a running node", info.Name, info.Cluster.Leader)
	}
	return -1, fmt.Errorf("no matching consumer on %s yet (%v)", stream, l.Err())
}

// Stop shuts node i down.
func (c *Cluster) Stop(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].Shutdown()
		c.nodes[i] = nil
	}
}

// Restart starts node i (again) on its ports and store.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	e, err := natsx.Start(c.opts[i])
	if err != nil {
		t.Fatalf("restart node %d: %v", i, err)
	}
	c.nodes[i] = e
}

// WaitHealthy waits until every running node sees a JetStream meta leader
// and is current with it.
func (c *Cluster) WaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	testpoll.For(t, timeout, "JetStream cluster healthy", func() error {
		leader := false
		for i, e := range c.nodes {
			if e == nil {
				continue
			}
			s := e.Server()
			if !s.JetStreamIsCurrent() {
				return fmt.Errorf("node %d is not current with the meta leader", i)
			}
			if s.JetStreamIsLeader() {
				leader = true
				// Placement needs every peer known online with stats: until
				// then an R3 asset fails with "no suitable peers".
				if got, want := len(s.JetStreamClusterPeers()), c.running(); got < want {
					return fmt.Errorf("the meta leader sees %d of %d peers ready for placement", got, want)
				}
			}
		}
		if !leader {
			return fmt.Errorf("no JetStream meta leader")
		}
		return nil
	})
}

// running is how many nodes are up.
func (c *Cluster) running() int {
	n := 0
	for _, e := range c.nodes {
		if e != nil {
			n++
		}
	}
	return n
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
