// Package natsx starts weir's embedded NATS server with JetStream and connects
// to it (or to an external cluster). It owns no weir state: buckets and streams
// belong to the packages that use them. It does own how every one of them is
// replicated (WithReplicas), how long each of their calls may take
// (WithDeadlines), how clients authenticate and notice a dead server (Dial),
// and the lease that lets one gateway of many act for all (Lease).
//
// It must not import any other weir package but internal/lifecycle, whose
// shutdown rule its lease follows, and internal/retry.
package natsx

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Embedded is a NATS server with JetStream running inside this process.
type Embedded struct {
	srv        *server.Server
	user, pass string
	storeDir   string
	trouble    atomic.Pointer[string] // storage error not recovered from (storage.go)
	recoveries atomic.Int64
	stop       chan struct{}
	watchDone  chan struct{}
}

// Options for an embedded server. Listen is host:port; port 0 or -1 picks a
// free one. StoreDir is where JetStream keeps its files.
type Options struct {
	Listen   string
	StoreDir string
	// ServerName names the node; it must stay the same across restarts for
	// JetStream to find its own data again.
	ServerName string
	// SyncInterval is how often JetStream fsyncs its files: zero is weir's
	// default (DefaultSyncInterval), negative fsyncs every write. A power
	// loss (not a process crash: written data is in the OS by then) can lose
	// what was acknowledged within the last interval. See docs/rationale.md.
	SyncInterval time.Duration
	// User and Password every client must present: the server never runs
	// open. When both are empty they are read from StoreDir/client-auth,
	// or generated into it (mode 0600) on first start, so a restart on the
	// same store keeps them and reconnecting clients get back in.
	User, Password string
	// Cluster, when set, makes this server one node of a JetStream cluster
	// (routes between nodes need the same credentials as clients).
	Cluster *ClusterOptions
}

// ClusterOptions join an embedded server to a cluster of embedded servers.
type ClusterOptions struct {
	Name   string   // cluster name, the same on every node
	Listen string   // host:port of this node's route listener
	Routes []string // host:port of every node's route listener (this one may be among them)
}

// DefaultSyncInterval is weir's choice for Options.SyncInterval.
const DefaultSyncInterval = time.Second

// authFile keeps generated credentials beside the JetStream store.
const authFile = "client-auth"

// Start runs an embedded server and waits until it accepts connections.
func Start(o Options) (*Embedded, error) {
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	name := o.ServerName
	if name == "" {
		name = "weir"
	}
	if o.User == "" && o.Password == "" {
		if o.User, o.Password, err = loadOrCreateAuth(filepath.Join(o.StoreDir, authFile)); err != nil {
			return nil, err
		}
	}
	if o.User == "" || o.Password == "" {
		return nil, errors.New("embedded nats: a user needs a password and a password a user")
	}
	so := &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 8 << 20,
		Users:      []*server.User{{Username: o.User, Password: o.Password}},
	}
	switch {
	case o.SyncInterval < 0:
		so.SyncAlways = true
	case o.SyncInterval == 0:
		so.SyncInterval = DefaultSyncInterval
	default:
		so.SyncInterval = o.SyncInterval
	}
	if c := o.Cluster; c != nil {
		ch, cp, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats cluster listen address %q: %w", c.Listen, err)
		}
		so.Cluster = server.ClusterOpts{Name: c.Name, Host: ch, Username: o.User, Password: o.Password}
		if so.Cluster.Port, err = strconv.Atoi(cp); err != nil {
			return nil, fmt.Errorf("nats cluster listen port %q: %w", cp, err)
		}
		for _, r := range c.Routes {
			so.Routes = append(so.Routes, &url.URL{Scheme: "nats-route", Host: r, User: url.UserPassword(o.User, o.Password)})
		}
		so.JetStreamMaxMemory = 256 << 20
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	e := &Embedded{srv: srv, storeDir: o.StoreDir, stop: make(chan struct{}), watchDone: make(chan struct{})}
	srv.SetLoggerV2(storageWatch{e}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded nats did not become ready in 10s (is the port taken?)")
	}
	e.user, e.pass = o.User, o.Password
	go e.watchStorage()
	return e, nil
}

// URL is the client URL of the embedded server, with its credentials.
func (e *Embedded) URL() string {
	u, err := url.Parse(e.srv.ClientURL())
	if err != nil { // cannot happen: the server formats it
		return e.srv.ClientURL()
	}
	u.User = url.UserPassword(e.user, e.pass)
	return u.String()
}

// Addr is host:port of the client listener (no credentials).
func (e *Embedded) Addr() string {
	return strings.TrimPrefix(e.srv.ClientURL(), "nats://")
}

// Server is the nats-server inside (for tests that look at its state).
func (e *Embedded) Server() *server.Server { return e.srv }

// Shutdown stops the server and waits for it to finish.
func (e *Embedded) Shutdown() {
	select {
	case <-e.stop:
	default:
		close(e.stop)
		<-e.watchDone
	}
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// loadOrCreateAuth reads "user:password" from path, or generates them into
// it (0600).
func loadOrCreateAuth(path string) (user, pass string, err error) {
	if b, err := os.ReadFile(path); err == nil {
		u, p, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
		if !ok || u == "" || p == "" {
			return "", "", fmt.Errorf("%s: want USER:PASSWORD", path)
		}
		return u, p, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", err
	}
	user, pass = "weir", NewSecret()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(path, []byte(user+":"+pass+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("write nats credentials: %w", err)
	}
	return user, pass, nil
}
