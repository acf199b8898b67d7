// Package natstest starts a real embedded NATS server with JetStream for tests.
package natstest

import (
	"testing"

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
	nc, err := natsx.Connect(s.URL(), t.Name())
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
