package gateway

import (
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/weirerr"
	"github.com/weirhq/weir/monitor"
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

// maxErrorBytes bounds an error message in an answer or an event: errors
// quote what the request sent (names, values), and a request must not be
// able to make the gateway echo megabytes back.
const maxErrorBytes = 1024

// clip cuts s to at most n bytes (at a UTF-8 boundary), saying how much
// was cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "... (" + strconv.Itoa(len(s)-cut) + " more bytes)"
}

// errorHandler renders every error a handler returns as {"error": "..."}.
// Internal errors (bugs) are logged with a request id and answered with
// that id only, as gRPC answers them (oipgrpc) and as a panic is.
// Errors from the runtime, wazero or the file system can name files under
// the data dir: hide lists the host paths (the data dir, absolute and as
// given) that an answer shows as "[data-dir]" instead.
func errorHandler(log *slog.Logger, hide ...string) fiber.ErrorHandler {
	var replace []string
	for _, p := range hide {
		if p != "" && p != "." && p != "/" {
			replace = append(replace, p, "[data-dir]"+p[len(strings.TrimRight(p, "/")):])
		}
	}
	scrub := strings.NewReplacer(replace...)
	return func(c *fiber.Ctx, err error) error {
		status := httpStatus(err)
		msg := err.Error()
		var fe *fiber.Error
		if errors.As(err, &fe) && fe.Code == fiber.StatusRequestEntityTooLarge {
			msg = "request body is larger than the gateway's limit (--max-body)"
		}
		if status == fiber.StatusInternalServerError {
			// A bug's details (paths, runtime messages) stay in the log,
			// under an id the caller can quote.
			id := monitor.NewID()
			log.Error("request failed", "request_id", id, "method", c.Method(), "path", c.Path(), "err", clip(msg, 4*maxErrorBytes))
			c.Set("X-Request-Id", id)
			return c.Status(status).JSON(fiber.Map{"error": internalMessage(id), "request_id": id})
		}
		if status == fiber.StatusServiceUnavailable || status == fiber.StatusTooManyRequests {
			// Both say "try again later": say when.
			c.Set(fiber.HeaderRetryAfter, "1")
		}
		msg = clip(scrub.Replace(msg), maxErrorBytes)
		return c.Status(status).JSON(fiber.Map{"error": msg})
	}
}

// internalMessage is what a caller sees of a bug: that it happened, and the
// id its details were logged under.
func internalMessage(id string) string {
	return "internal error: the gateway failed while serving this request (request id " + id + ", logged)"
}
