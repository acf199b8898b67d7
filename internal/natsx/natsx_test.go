package natsx_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
)

// refused checks that url without credentials (and with wrong ones) cannot
// connect.
func refused(t *testing.T, addr string) {
	t.Helper()
	for _, u := range []string{"nats://" + addr, "nats://weir:wrong@" + addr} {
		nc, err := nats.Connect(u, nats.MaxReconnects(0))
		if err == nil {
			nc.Close()
			t.Fatalf("%s: a stranger connected", natsx.Redact(u))
		}
		if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Fatalf("%s: refused with %v, want an authorization violation", natsx.Redact(u), err)
		}
	}
}

func TestEmbeddedRefusesStrangers(t *testing.T) {
	s := natstest.Start(t)
	refused(t, s.Addr())
	nc, _ := s.Connect(t)
	if !nc.IsConnected() {
		t.Fatal("a client with the credentials is not connected")
	}
	// A restart on the same store keeps the generated credentials.
	url := s.URL()
	s.Shutdown()
	s2 := natstest.StartIn(t, s.Dir)
	if s2.URL() != strings.Replace(url, s.Addr(), s2.Addr(), 1) {
		t.Fatalf("credentials changed across a restart: %s then %s", natsx.Redact(url), natsx.Redact(s2.URL()))
	}
}

func TestClusterRefusesStrangersAndReplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node JetStream cluster (~5s); run without -short")
	}
	c := natstest.StartCluster(t, 3)
	for i := range 3 {
		refused(t, c.Addr(i))
	}
	nc, err := natsx.Connect(c.URL(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	raw, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// An asset made before --nats-replicas was raised has 1 replica.
	if _, err := raw.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "old"}); err != nil {
		t.Fatal(err)
	}
	js := natsx.WithReplicas(raw, 3, nil)
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "old"}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "blobs"}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	// One with more replicas than asked keeps them.
	if _, err := natsx.WithReplicas(raw, 2, nil).CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	// A watch through WithReplicas: current values, nil, updates; Stop
	// closes the channel.
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "old"})
	if err != nil {
		t.Fatal(err)
	}
	kv.Put(ctx, "a", []byte("1"))
	kv.Put(ctx, "a", []byte("2"))
	kv.Put(ctx, "b", []byte("1"))
	w, err := kv.WatchAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	next := func() string {
		select {
		case e := <-w.Updates():
			if e == nil {
				return "nil"
			}
			return e.Key() + "=" + string(e.Value())
		case <-time.After(10 * time.Second):
			return "timeout"
		}
	}
	got = append(got, next(), next(), next())
	kv.Delete(ctx, "b")
	got = append(got, next())
	if strings.Join(got, " ") != "a=2 b=1 nil b=" {
		t.Errorf("watch gave %q, want a=2 b=1 nil b= (delete)", got)
	}
	w.Stop()
	for range w.Updates() {
	}

	testpoll.For(t, 20*time.Second, "every asset replicated 3 times with a leader", func() error {
		assets, err := natsx.Assets(ctx, js)
		if err != nil {
			return err
		}
		if len(assets) != 3 {
			return errors.New("want 3 assets")
		}
		for _, a := range assets {
			if a.Replicas != 3 || a.Leader == "" || len(a.Peers) != 2 {
				return errors.New(a.Kind + " " + a.Name + " not 3 replicas with a leader and 2 peers")
			}
		}
		return nil
	})
}

func TestLeaseHasOneHolder(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	ctx := context.Background()
	a, err := natsx.NewLease(ctx, js, "duty", "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := natsx.NewLease(ctx, js, "duty", "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if !a.Held() || b.Held() {
		t.Fatalf("held: a %v, b %v; want a only", a.Held(), b.Held())
	}
	a.Close(context.Background()) // frees it: b takes it at its next try
	testpoll.For(t, 2*natsx.LeaseTTL, "b to take the freed lease", func() error {
		if !b.Held() {
			return fmt.Errorf("b does not hold it (a holds it: %v)", a.Held())
		}
		return nil
	})
	// The same holder id after a restart takes its own lease back at once.
	b2, err := natsx.NewLease(ctx, js, "duty", "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close(context.Background())
	if !b2.Held() {
		t.Fatal("a restarted holder did not take its own lease back")
	}
}

func TestClientOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o    natsx.ClientOptions
		want string
	}{
		{natsx.ClientOptions{}, "nats url is empty"},
		{natsx.ClientOptions{URL: "nats://a:4222,::bad"}, "want nats://"},
		{natsx.ClientOptions{URL: "nats://a:4222", TLSCert: "c"}, "go together"},
		{natsx.ClientOptions{URL: "nats://a:4222", CredsFile: "a", NKeyFile: "b"}, "give one"},
		{natsx.ClientOptions{URL: "nats://a:4222", TLSCA: "/no/such/ca.pem"}, "--nats-tls-ca"},
	} {
		err := tc.o.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.o, err, tc.want)
		}
	}
	if natsx.Redact("nats://u:secret@h:1,nats://tok@h:2") != "nats://redacted@h:1,nats://redacted@h:2" {
		t.Errorf("Redact: %s", natsx.Redact("nats://u:secret@h:1,nats://tok@h:2"))
	}
}

// TestReplicatedAssetWaitsForPeers creates an R3 bucket on a cluster whose
// third server has not started yet, as a gateway does when it starts beside
// NATS servers still coming up: the create waits for the server instead of
// failing with "no suitable peers for placement".
func TestReplicatedAssetWaitsForPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node JetStream cluster (~5s); run without -short")
	}
	c := natstest.StartClusterPart(t, 3, 2)
	nc, err := natsx.Connect(c.URL(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	raw, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	// The cluster refuses an R3 asset with two servers...
	var apiErr *jetstream.APIError
	if _, err := raw.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "probe", Replicas: 3}); !errors.As(err, &apiErr) || apiErr.ErrorCode != 10005 {
		t.Fatalf("R3 bucket on two servers: %v, want no suitable peers (10005)", err)
	}
	// ...and WithReplicas waits until the third is up.
	started := make(chan struct{})
	go func() {
		defer close(started)
		time.Sleep(time.Second)
		c.Restart(t, 2)
	}()
	_, err = natsx.WithReplicas(raw, 3, nil).CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "late"})
	<-started
	if err != nil {
		t.Fatalf("create an R3 bucket while the third server starts: %v", err)
	}
}

// WaitForServer: with no server to reach, Dial returns a connection that
// keeps trying and connects once one starts; a server that refuses the
// credentials is still an error at once.
func TestDialWaitsForServer(t *testing.T) {
	s := natstest.Start(t)
	url := s.URL()
	user, _ := natsx.URLUser(url)
	wrong := strings.Replace(url, user+":", user+"x:", 1)
	if nc, err := natsx.Dial(natsx.ClientOptions{URL: wrong, WaitForServer: true}); err == nil {
		nc.Close()
		t.Fatal("wrong credentials: Dial waited instead of failing")
	}
	s.Shutdown()
	nc, err := natsx.Dial(natsx.ClientOptions{URL: url, WaitForServer: true})
	if err != nil {
		t.Fatalf("no server: Dial failed instead of waiting: %v", err)
	}
	defer nc.Close()
	if nc.IsConnected() {
		t.Fatal("connected with the server stopped")
	}
	e, err := natsx.Start(natsx.Options{Listen: s.Addr(), StoreDir: s.Dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	testpoll.For(t, 30*time.Second, "the waiting connection to connect", func() error {
		if !nc.IsConnected() {
			return fmt.Errorf("state %s", natsx.State(nc))
		}
		return nil
	})
}
