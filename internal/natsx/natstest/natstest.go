package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirhq/weir/internal/natsx"
)

// Server is a running embedded server for one test.
type Server struct {
	*natsx.Embedded
	Dir string
}

// Start runs an embedded server on a random loopback port, storing under a
// temporary directory, and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	return StartIn(t, dir)
}

// StartIn runs a server storing under dir (use it to restart on the same data).
func StartIn(t testing.TB, dir string) *Server {
	t.Helper()
	e, err := natsx.Start(natsx.Options{Listen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	return &Server{Embedded: e, Dir: dir}
}

// Connect returns a client connection and its JetStream context, closed when
// the test ends.
func (s *Server) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return ConnectURL(t, s.URL())
}

// ConnectURL connects to url (credentials in it) as Connect does, for a
// server started some other way.
func ConnectURL(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := natsx.Connect(url, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// StartTuned runs a bare JetStream server on loopback (no credentials,
// unlike Start) with tune applied to its options, for tests of a server
// configured as weir's embedded one never is (a small max payload, little
// storage, a small ingest buffer). It returns a connection to it; both end
// with the test.
func StartTuned(t testing.TB, tune func(*server.Options)) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
	tune(o)
	srv, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready in 10s")
	}
	return ConnectURL(t, srv.ClientURL())
}
