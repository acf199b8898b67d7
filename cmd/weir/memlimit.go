package main

import (
	"log/slog"

	"github.com/weirhq/weir/internal/overload"
)

// setGoMemLimit sets GOMEMLIMIT to 90% of the container's memory limit (or
// the machine's), the limit the gateway's memory budget is sized from,
// unless the GOMEMLIMIT environment variable is set (docs/rationale.md, "A
// budget of bytes in flight").
func setGoMemLimit(log *slog.Logger) {
	limit, err := overload.MemoryLimit()
	if err != nil {
		log.Warn("GOMEMLIMIT left unset: the memory limit is unknown", "err", err)
		return
	}
	if n, set := overload.SetGoMemLimit(limit.Bytes); set {
		log.Info("GOMEMLIMIT set", "bytes", n, "limit", limit.Bytes, "from", limit.Source)
	} else {
		log.Info("GOMEMLIMIT as given", "bytes", n)
	}
}
