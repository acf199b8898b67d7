package gateway

import (
	"fmt"
	"runtime/debug"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/monitor"
)

// recoverPanics keeps a panic in one handler from ending the process: the
// request answers 500 with a request id (in the body and X-Request-Id), the
// panic and its stack are logged once under that id, and weir_panics_total
// counts it. What panicked stays in the log, not in the answer.
func (g *Gateway) recoverPanics(c *fiber.Ctx) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		id := monitor.NewID()
		g.met.panics.Inc()
		g.log.Error("panic serving a request", "request_id", id, "method", c.Method(), "path", c.Path(),
			"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		c.Set("X-Request-Id", id)
		err = c.Status(fiber.StatusInternalServerError).JSON(fiber.Map{
			"error":      internalMessage(id),
			"request_id": id,
		})
	}()
	return c.Next()
}

// recoverGo is recoverPanics for work a request starts off its own path
// (shadow requests): deferred first thing in such a goroutine.
func (g *Gateway) recoverGo(what string) {
	if r := recover(); r != nil {
		g.met.panics.Inc()
		g.log.Error("panic in "+what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
}
