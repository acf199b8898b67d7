package gateway

import (
	"errors"
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/weirerr"
)

var statusOf = map[weirerr.Kind]int{
	weirerr.Internal:     fiber.StatusInternalServerError,
	weirerr.Invalid:      fiber.StatusBadRequest,
	weirerr.Unauthorized: fiber.StatusUnauthorized,
	weirerr.NotFound:     fiber.StatusNotFound,
	weirerr.Conflict:     fiber.StatusConflict,
	weirerr.TooLarge:     fiber.StatusRequestEntityTooLarge,
	weirerr.Overloaded:   fiber.StatusTooManyRequests,
	weirerr.Upstream:     fiber.StatusBadGateway,
	weirerr.Unavailable:  fiber.StatusServiceUnavailable,
}

// httpStatus is the status an error answers with.
func httpStatus(err error) int {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return statusOf[weirerr.KindOf(err)]
}

// errorHandler renders every error a handler returns as {"error": "..."}.
// Internal errors are logged and shown without their details.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		status := httpStatus(err)
		msg := err.Error()
		var fe *fiber.Error
		if errors.As(err, &fe) && fe.Code == fiber.StatusRequestEntityTooLarge {
			msg = "request body is larger than the gateway's limit (--max-body)"
		}
		if status == fiber.StatusInternalServerError {
			log.Error("request failed", "method", c.Method(), "path", c.Path(), "err", err)
			msg = "internal error: " + msg
		}
		return c.Status(status).JSON(fiber.Map{"error": msg})
	}
}
