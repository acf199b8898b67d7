package overload

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
)

// Limit is the memory the process may use, and the file that said so.
type Limit struct {
	Bytes  int64
	Source string
}

// DefaultBudget is the budget a limit gives when none is configured: half
// of it, leaving the other half to what the budget does not count (loaded
// models, plugin instances, caches, the runtime's own overhead).
func DefaultBudget(limit int64) int64 { return limit / 2 }

// MemoryLimit reads the container's memory limit: cgroup v2's memory.max,
// else cgroup v1's memory.limit_in_bytes, of the process's own cgroup (as
// /proc/self/cgroup names it) or of the hierarchy's root (a container's
// own); without one, or with one above it, the machine's memory (MemTotal
// in /proc/meminfo).
func MemoryLimit() (Limit, error) {
	return readLimit("/sys/fs/cgroup", "/proc/self/cgroup", "/proc/meminfo")
}

func readLimit(cgroupRoot, selfCgroup, meminfo string) (Limit, error) {
	total, err := memTotal(meminfo)
	if err != nil {
		return Limit{}, err
	}
	for _, f := range cgroupFiles(cgroupRoot, selfCgroup) {
		if n, ok := cgroupLimit(f); ok && n < total {
			return Limit{Bytes: n, Source: f}, nil
		}
	}
	return Limit{Bytes: total, Source: meminfo}, nil
}

// cgroupFiles lists the files that may hold the process's memory limit:
// its own cgroup's (v2 "0::/path", v1 "4:memory:/path" lines of
// selfCgroup), then the root's.
func cgroupFiles(root, selfCgroup string) []string {
	var files []string
	if b, err := os.ReadFile(selfCgroup); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			id, rest, _ := strings.Cut(line, ":")
			controllers, path, ok := strings.Cut(rest, ":")
			switch {
			case !ok:
			case id == "0" && controllers == "":
				files = append(files, filepath.Join(root, path, "memory.max"))
			case slices.Contains(strings.Split(controllers, ","), "memory"):
				files = append(files, filepath.Join(root, "memory", path, "memory.limit_in_bytes"))
			}
		}
	}
	return append(files, filepath.Join(root, "memory.max"), filepath.Join(root, "memory", "memory.limit_in_bytes"))
}

// cgroupLimit reads a memory.max or memory.limit_in_bytes file: ok is
// false when it is absent or says "max" (no limit). (v1's "no limit" is a
// number near 2^63, which is above any machine's memory.)
func cgroupLimit(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil && n > 0
}

// memTotal reads MemTotal from a /proc/meminfo file.
func memTotal(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read the machine's memory: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil || kb <= 0 {
				return 0, fmt.Errorf("%s: MemTotal %q is not a size in kB", path, strings.TrimSpace(rest))
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("%s has no MemTotal line", path)
}

// SetGoMemLimit sets the Go runtime's soft memory limit (GOMEMLIMIT) to 90%
// of limit, so that the collector works harder before the limit is reached
// instead of the kernel killing the process, unless the GOMEMLIMIT
// environment variable is set: the runtime has read it, and the user's word
// stands. It returns the limit in force and whether it set it.
func SetGoMemLimit(limit int64) (int64, bool) {
	if os.Getenv("GOMEMLIMIT") != "" || limit <= 0 {
		return debug.SetMemoryLimit(-1), false
	}
	n := limit / 10 * 9
	debug.SetMemoryLimit(n)
	return n, true
}
