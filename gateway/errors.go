package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/clip"
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
	if _, full := diskFull(err); full {
		return fiber.StatusInsufficientStorage
	}
	return statusOf[weirerr.KindOf(err)]
}

// diskFull reports whether err is a full disk (or an exhausted quota), and
// the directory it was writing in when the error names a file.
func diskFull(err error) (dir string, full bool) {
	if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EDQUOT) {
		return "", false
	}
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		dir = filepath.Dir(pe.Path)
	case errors.As(err, &le):
		dir = filepath.Dir(le.New)
	}
	return dir, true
}

// retryAfter is the Retry-After (seconds) of a 429 or 503 that does not
// set its own: a full queue, a budget in use, a NATS leader being elected
// are matters of a second or two.
const retryAfter = "1"

// maxErrorBytes bounds an error message in an answer or an event: errors
// quote what the request sent (names, values), and a request must not be
// able to make the gateway echo megabytes back.
const maxErrorBytes = 1024

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
		switch status {
		case fiber.StatusInternalServerError:
			// A bug's details (paths, runtime messages) stay in the log,
			// under an id the caller can quote.
			id := monitor.NewID()
			log.Error("request failed", "request_id", id, "method", c.Method(), "path", c.Path(), "err", clip.String(msg, 4*maxErrorBytes))
			c.Set("X-Request-Id", id)
			return c.Status(status).JSON(fiber.Map{"error": internalMessage(id), "request_id": id})
		case fiber.StatusInsufficientStorage:
			dir, _ := diskFull(err)
			log.Error("disk full", "dir", dir, "method", c.Method(), "path", c.Path(), "err", clip.String(msg, 4*maxErrorBytes))
			msg = fmt.Sprintf("insufficient storage: the disk holding %s is full; free space there (or give the gateway a larger --data-dir): %s", dir, msg)
		case fiber.StatusServiceUnavailable, fiber.StatusTooManyRequests:
			// Both say "try again later": say when, unless the handler did.
			if len(c.Response().Header.Peek(fiber.HeaderRetryAfter)) == 0 {
				c.Set(fiber.HeaderRetryAfter, retryAfter)
			}
		}
		msg = clip.String(scrub.Replace(msg), maxErrorBytes)
		return c.Status(status).JSON(fiber.Map{"error": msg})
	}
}

// internalMessage is what a caller sees of a bug: that it happened, and the
// id its details were logged under.
func internalMessage(id string) string {
	return "internal error: the gateway failed while serving this request (request id " + id + ", logged)"
}
