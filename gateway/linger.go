package gateway

import (
	"io"
	"net"
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

// lingerListener hands fasthttp connections that can linger on close.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c}, nil
}

type lingerConn struct {
	net.Conn
	linger atomic.Bool
}

// Close closes at once unless the connection was marked by closeUnread;
// then it shuts the write side and closes after draining, in the
// background, so the server's worker is not held.
func (c *lingerConn) Close() error {
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
