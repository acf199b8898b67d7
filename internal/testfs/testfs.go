// Package testfs gives tests a small file system of their own, so that a full
// disk can be reproduced for real: a tmpfs of a few MiB mounted on a
// temporary directory and unmounted when the test ends. It is for tests only
// and imports nothing from weir.
package testfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a fresh temporary directory and
// returns it; the test is skipped, saying why, where mounting is not
// permitted (not root, or a container without CAP_SYS_ADMIN).
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	opts := fmt.Sprintf("size=%d,mode=0755", size)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			t.Skipf("a full disk needs a tmpfs of its own and mounting one is not permitted here (%v): run as root or with CAP_SYS_ADMIN", err)
		}
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes a file under dir until the file system is full, leaving
// about leave bytes free, and returns its path; removing it frees the space.
func Fill(t testing.TB, dir string, leave int64) string {
	t.Helper()
	path := dir + "/filler"
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for Free(t, dir) > leave+int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	for free := Free(t, dir); free > leave; free = Free(t, dir) {
		n := min(free-leave, int64(len(buf)))
		if _, err := f.Write(buf[:n]); err != nil {
			break
		}
		if Free(t, dir) == free {
			break // below a block: tmpfs counts pages
		}
	}
	return path
}

// Free is the bytes free on the file system holding dir.
func Free(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// Usage describes the mount for a failure message (df's line for dir).
func Usage(dir string) string {
	out, err := exec.Command("df", "-B1", dir).CombinedOutput()
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(out))
}
