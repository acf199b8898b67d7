package gateway

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
)

// A connection closed while the client is still sending a body (one over
// its limit, answered 413 without reading it) has unread bytes in the
// kernel's buffer, and closing it then sends a TCP reset instead of a
// close: the client's write fails, and the reset may drop the 413 before
// the client read it. Such a connection lingers instead, as Go's net/http
// and nginx do: its write side is shut (the client reads the answer to its
// end), and what still arrives is read and dropped, for at most
// lingerTime or lingerBytes, before it is closed.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 64 << 20
)

// lingerListener hands fasthttp connections that can linger on close, and
// keeps them in conns until they close.
type lingerListener struct {
	net.Listener
	conns *connSet
}

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &lingerConn{Conn: c, conns: l.conns}
	l.conns.add(lc)
	return lc, nil
}

type lingerConn struct {
	net.Conn
	linger atomic.Bool
	conns  *connSet
	cut    atomic.Bool // Shutdown is done with it: reads end
}

// Read reads until Shutdown cuts the connection; then it reads an end, so
// that fasthttp's worker closes it as a client's close. (Closing it under
// the worker would make fasthttp panic on its next deadline.)
func (c *lingerConn) Read(p []byte) (int, error) {
	if c.cut.Load() {
		return 0, io.EOF
	}
	return c.Conn.Read(p)
}

// connSet is every HTTP connection open. fasthttp's Shutdown closes idle
// connections until its context ends and then returns, leaving a
// connection whose request was still running to serve keep-alive
// requests after it; Shutdown cuts what is left (cutAll).
type connSet struct {
	mu sync.Mutex
	m  map[*lingerConn]struct{}
}

func (s *connSet) add(c *lingerConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[*lingerConn]struct{})
	}
	s.m[c] = struct{}{}
}

func (s *connSet) remove(c *lingerConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, c)
}

// cutAll ends the reads of every connection still open, a read under way
// included, and says how many there were: each closes once its worker has
// written what it was writing.
func (s *connSet) cutAll() int {
	s.mu.Lock()
	open := make([]*lingerConn, 0, len(s.m))
	for c := range s.m {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		c.cut.Store(true)
		_ = c.Conn.SetReadDeadline(time.Now())
	}
	return len(open)
}

// Close closes at once unless the connection was marked by closeUnread;
// then it shuts the write side and closes after draining, in the
// background, so the server's worker is not held.
func (c *lingerConn) Close() error {
	c.conns.remove(c)
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !c.linger.Load() || !ok {
		return c.Conn.Close()
	}
	if err := cw.CloseWrite(); err != nil {
		return c.Conn.Close()
	}
	go func() {
		_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
		_, _ = io.CopyN(io.Discard, c.Conn, lingerBytes)
		c.Conn.Close()
	}()
	return nil
}

// closeUnread closes the request's connection after the answer, lingering
// on it: the body was not read to its end.
func closeUnread(c *fiber.Ctx) {
	c.Context().SetConnectionClose()
	if lc, ok := c.Context().Conn().(*lingerConn); ok {
		lc.linger.Store(true)
	}
}
