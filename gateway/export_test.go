package gateway

import (
	"net/http/httptest"
	"time"

	"github.com/gofiber/fiber/v2"
)

// RequestDeadlineForTest runs a request through g's deadline middleware and
// returns how long its context had left.
func RequestDeadlineForTest(g *Gateway) (left time.Duration, ok bool) {
	app := fiber.New()
	app.Use(g.requestDeadline)
	app.Get("/", func(c *fiber.Ctx) error {
		var d time.Time
		d, ok = c.UserContext().Deadline()
		left = time.Until(d)
		return nil
	})
	if _, err := app.Test(httptest.NewRequest("GET", "/", nil), -1); err != nil {
		return 0, false
	}
	return left, ok
}

// HoldShadows makes shadow requests wait until release is called, so a test
// can show that callers are answered without waiting for their shadow.
func HoldShadows(g *Gateway) (release func()) {
	g.shadowGate = make(chan struct{})
	return func() { close(g.shadowGate) }
}
