package overload

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// writeFiles writes name -> content under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const meminfo = "MemTotal:       16318492 kB\nMemFree:         1234 kB\n"

func TestMemoryLimitFromCgroupFiles(t *testing.T) {
	const machine = 16318492 << 10
	cases := []struct {
		name       string
		self       string // /proc/self/cgroup
		files      map[string]string
		want       int64
		wantSource string
	}{
		{name: "v2 root", self: "0::/\n", files: map[string]string{"cg/memory.max": "1073741824\n"}, want: 1 << 30, wantSource: "cg/memory.max"},
		{name: "v2 own cgroup", self: "0::/system.slice/weir.service\n",
			files: map[string]string{"cg/system.slice/weir.service/memory.max": "536870912\n", "cg/memory.max": "max\n"},
			want:  512 << 20, wantSource: "cg/system.slice/weir.service/memory.max"},
		{name: "v2 max", self: "0::/\n", files: map[string]string{"cg/memory.max": "max\n"}, want: machine, wantSource: "meminfo"},
		{name: "v1", self: "5:cpu,cpuacct:/\n4:memory:/\n",
			files: map[string]string{"cg/memory/memory.limit_in_bytes": "268435456\n"}, want: 256 << 20, wantSource: "cg/memory/memory.limit_in_bytes"},
		{name: "v1 unlimited", self: "4:memory:/\n",
			files: map[string]string{"cg/memory/memory.limit_in_bytes": "9223372036854771712\n"}, want: machine, wantSource: "meminfo"},
		{name: "v1 without cgroup namespace", self: "4:memory:/docker/abc\n",
			files: map[string]string{"cg/memory/memory.limit_in_bytes": "268435456\n"}, want: 256 << 20, wantSource: "cg/memory/memory.limit_in_bytes"},
		{name: "above the machine", self: "0::/\n", files: map[string]string{"cg/memory.max": "1099511627776000\n"}, want: machine, wantSource: "meminfo"},
		{name: "no cgroup", files: map[string]string{}, want: machine, wantSource: "meminfo"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.files["meminfo"] = meminfo
			c.files["self"] = c.self
			writeFiles(t, dir, c.files)
			got, err := readLimit(filepath.Join(dir, "cg"), filepath.Join(dir, "self"), filepath.Join(dir, "meminfo"))
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(dir, c.wantSource); got.Bytes != c.want || got.Source != want {
				t.Errorf("limit %d from %s, want %d from %s", got.Bytes, got.Source, c.want, want)
			}
		})
	}
}

func TestMemoryLimitNeedsMeminfo(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"meminfo": "MemFree: 12 kB\n"})
	if _, err := readLimit(dir, filepath.Join(dir, "self"), filepath.Join(dir, "meminfo")); err == nil {
		t.Error("a meminfo without MemTotal gave a limit")
	}
}

// The machine this runs on has a limit, whichever file gives it.
func TestMemoryLimitHere(t *testing.T) {
	if _, err := os.Stat("/proc/meminfo"); err != nil {
		t.Skip("no /proc/meminfo")
	}
	l, err := MemoryLimit()
	if err != nil || l.Bytes <= 0 {
		t.Fatalf("MemoryLimit() = %+v, %v", l, err)
	}
}

func TestSetGoMemLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })

	t.Setenv("GOMEMLIMIT", "") // empty is unset, to the runtime too
	if n, set := SetGoMemLimit(10 << 30); !set || n != 9<<30 || debug.SetMemoryLimit(-1) != 9<<30 {
		t.Errorf("without GOMEMLIMIT: SetGoMemLimit = %d, %v (runtime: %d), want 9 GiB set", n, set, debug.SetMemoryLimit(-1))
	}

	// The user's GOMEMLIMIT stands (the runtime read it at start; here the
	// limit in force stands for it).
	debug.SetMemoryLimit(3 << 30)
	t.Setenv("GOMEMLIMIT", "3GiB")
	if n, set := SetGoMemLimit(10 << 30); set || n != 3<<30 || debug.SetMemoryLimit(-1) != 3<<30 {
		t.Errorf("with GOMEMLIMIT=3GiB: SetGoMemLimit = %d, %v (runtime: %d), want 3 GiB kept", n, set, debug.SetMemoryLimit(-1))
	}
}
