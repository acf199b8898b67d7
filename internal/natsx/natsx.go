// Package natsx starts weir's embedded NATS server with JetStream and connects
// to it (or to an external cluster). It owns no weir state: buckets and streams
// belong to the packages that use them.
package natsx

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Embedded is a NATS server with JetStream running inside this process.
type Embedded struct {
	srv *server.Server
}

// Options for an embedded server. Listen is host:port; port 0 or -1 picks a
// free one. StoreDir is where JetStream keeps its files.
type Options struct {
	Listen   string
	StoreDir string
	// ServerName names the node; it must stay the same across restarts for
	// JetStream to find its own data again.
	ServerName string
	// SyncInterval is how often JetStream fsyncs its files; 0 fsyncs every
	// write. A power loss (not a process crash: written data is in the OS by
	// then) can lose what was acknowledged within the last interval.
	// Negative keeps the server's default (2 minutes). See docs/rationale.md.
	SyncInterval time.Duration
}

// DefaultSyncInterval is weir's choice for Options.SyncInterval.
const DefaultSyncInterval = time.Second

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
	so := &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 8 << 20,
	}
	switch {
	case o.SyncInterval == 0:
		so.SyncAlways = true
	case o.SyncInterval > 0:
		so.SyncInterval = o.SyncInterval
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded nats did not become ready in 10s (is the port taken?)")
	}
	return &Embedded{srv: srv}, nil
}

// URL is the client URL of the embedded server.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server and waits for it to finish.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Connect dials url with reconnects forever, which is what a long-running
// gateway wants: NATS going away must not end the process.
func Connect(url, name string) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectBufSize(8<<20),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", url, err)
	}
	return nc, nil
}
