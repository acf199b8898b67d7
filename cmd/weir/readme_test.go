package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/examples/fraud"
	"github.com/weirhq/weir/internal/leakcheck"
	"github.com/weirhq/weir/internal/testgw"
)

// asCLI makes the test binary act as the weir binary when the README test
// runs it through a `weir` script on PATH: no second build of the CLI.
const asCLI = "WEIR_TEST_BINARY_IS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(asCLI) == "1" {
		os.Exit(run())
	}
	// Every goroutine a test starts has an owner that stops it: none may
	// outlive the tests.
	leakcheck.Main(m)
}

// readmeBlocks returns README.md's sh command blocks, in order.
func readmeBlocks(t *testing.T, readme string) [][]string {
	t.Helper()
	var blocks [][]string
	var cur []string
	in := false
	for _, line := range strings.Split(readme, "\n") {
		switch {
		case !in && strings.TrimSpace(line) == "```sh":
			in, cur = true, nil
		case in && strings.TrimSpace(line) == "```":
			in = false
			blocks = append(blocks, cur)
		case in:
			cur = append(cur, line)
		}
	}
	if len(blocks) < 5 {
		t.Fatalf("README.md has %d sh blocks: the parser lost them", len(blocks))
	}
	return blocks
}

// TestReadmeCommandsRun runs every command of README.md's sh blocks, as
// written and in order, against a gateway with the fraud demo installed and
// demo traffic streaming, as after `make run`. Lines calling make are what
// the test harness already did (build, plugins, install: `weir` on PATH is
// this binary); localhost:8080 is the test gateway's address. A command
// that fails fails the test with its block and output.
func TestReadmeCommandsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the README walk takes about a minute")
	}
	for _, tool := range []string{"bash", "curl", "grep"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("README commands need %s: %v", tool, err)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// A working directory like the repository's root: examples/ and
	// build/plugins/ where the README names them, weir-data/ the gateway's.
	work := t.TempDir()
	plugins := testgw.PluginDir(t)
	if err := os.Symlink(filepath.Join(root, "examples"), filepath.Join(work, "examples")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(work, "build"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(plugins, filepath.Join(work, "build", "plugins")); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(work, "bin")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\n%s=1 exec %q \"$@\"\n", asCLI, self)
	for _, p := range []string{filepath.Join(bin, "weir"), filepath.Join(work, "build", "weir")} {
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	g := testgw.Start(t, testgw.WithDataDir(filepath.Join(work, "weir-data")))
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	gen, err := setupDemo(ctx, g.Client, plugins, 2000, testWriter{t})
	if err != nil {
		t.Fatalf("install the demo as make run does: %v", err)
	}
	live, stopLive := context.WithCancel(ctx)
	streamed := make(chan error, 1)
	go func() { streamed <- fraud.Stream(live, g.Client, gen, 10, 0, nil) }()
	defer func() { stopLive(); <-streamed }()

	host := strings.TrimPrefix(g.URL, "http://")
	env := append(os.Environ(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"WEIR_SERVER="+g.URL, "WEIR_ADMIN_TOKEN="+g.Token,
		"XDG_CONFIG_HOME="+t.TempDir()) // weir login writes here, not in the user's home
	makeLine := regexp.MustCompile(`^\s*make(\s|$)`)
	ran := 0
	for i, block := range readmeBlocks(t, string(readme)) {
		var cmds []string
		pending := ""
		for _, line := range block {
			if strings.HasSuffix(line, "\\") { // continued on the next line
				pending += line + "\n"
				continue
			}
			line, pending = pending+line, ""
			if strings.TrimSpace(line) == "" || makeLine.MatchString(line) {
				continue
			}
			line = strings.ReplaceAll(line, "localhost:8080", host)
			cmds = append(cmds, strings.ReplaceAll(line, "localhost:8081", g.GRPCAddr))
		}
		if len(cmds) == 0 {
			continue
		}
		for _, c := range cmds {
			// Optional tools (grpcurl) a user may not have: README says
			// what they are; weir, curl and grep are required above.
			if prog := strings.Fields(c)[0]; !strings.Contains(prog, "=") {
				if _, err := exec.LookPath(prog); err != nil && prog != "weir" {
					t.Logf("block %d: %s is not installed here, skipped: %s", i+1, prog, c)
					continue
				}
			}
			bctx, bcancel := context.WithTimeout(ctx, 3*time.Minute)
			cmd := exec.CommandContext(bctx, "bash", "-e", "-o", "pipefail", "-c", c)
			cmd.Dir, cmd.Env = work, env
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			start := time.Now()
			err := cmd.Run()
			bcancel()
			if err != nil {
				t.Fatalf("README block %d, command\n  %s\nfailed after %v: %v\n%s", i+1, c, time.Since(start).Round(time.Millisecond), err, out.String())
			}
			t.Logf("block %d: %s (%v)\n%s", i+1, c, time.Since(start).Round(time.Millisecond), lastLines(out.String(), 6))
			ran++
		}
	}
	if ran < 15 {
		t.Fatalf("only %d README commands ran: the README lost its examples or the parser lost them", ran)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
