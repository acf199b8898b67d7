package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// execute runs the weir command line in process and returns its error.
func execute(args ...string) error {
	root := newRoot()
	root.SetArgs(append(args, "--server", "http://127.0.0.1:1"))
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	return root.ExecuteContext(context.Background())
}

// Flags that cannot be right are refused with a message naming the flag and
// the form expected, before anything is sent.
func TestCommandsRefuseBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"canary", "start", "r", "--to", "fraud"}, `--to "fraud": expected MODEL@VERSION`},
		{[]string{"canary", "start", "r", "--to", "@2"}, `expected MODEL@VERSION`},
		{[]string{"canary", "start", "r", "--to", "fraud@2", "--steps", "5,half,100"}, `--steps "5,half,100": expected weights like 5,25,50,100`},
		{[]string{"canary", "start", "r"}, `--to "": expected MODEL@VERSION (or --plugin NAME@VERSION for a plugin canary)`},
		{[]string{"canary", "start", "r", "--plugin", "ratio"}, `--plugin "ratio": expected NAME@VERSION`},
		{[]string{"canary", "start", "r", "--to", "fraud@2", "--max-drift", "lots"}, `--max-drift "lots": expected a number >= 0 (PSI), or off`},
		{[]string{"canary", "promote"}, "accepts 1 arg"},
		{[]string{"model", "batching", "m", "1"}, "give --max-batch-size (0 turns batching off)"},
		{[]string{"model", "batching", "m", "1", "--max-batch-size", "8", "--preferred-batch-sizes", "4,x"}, `invalid argument "4,x"`},
	} {
		err := execute(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("weir %s: %v, want an error containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

func TestReadData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "req.json")
	if err := os.WriteFile(path, []byte(`{"a":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ arg, want string }{
		{`{"inline":true}`, `{"inline":true}`},
		{"@" + path, `{"a":1}`},
	} {
		got, err := readData(tc.arg)
		if err != nil || string(got) != tc.want {
			t.Errorf("readData(%q) = %q, %v; want %q", tc.arg, got, err, tc.want)
		}
	}
	if _, err := readData("@" + filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Errorf("readData of a missing file: no error")
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// A word that names no subcommand fails, under every command group, with
// cobra's "unknown command" and a suggestion where one is close.
func TestUnknownSubcommandFails(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plugin", "lss"}, `unknown command "lss" for "weir plugin"; did you mean ls?`},
		{[]string{"plugin", "nit"}, `unknown command "nit" for "weir plugin"; did you mean init?`},
		{[]string{"plugin", "pusj"}, `did you mean push?`},
		{[]string{"model", "frobnicate"}, `unknown command "frobnicate" for "weir model"`},
		{[]string{"canary", "stat"}, `did you mean start or status?`},
		{[]string{"frobnicate"}, `unknown command "frobnicate" for "weir"`},
	} {
		err := execute(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("weir %s: %v, want an error containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	var groups int
	for _, c := range newRoot().Commands() {
		if !c.HasSubCommands() {
			continue
		}
		groups++
		if err := execute(c.Name(), "no-such-command"); err == nil {
			t.Errorf("weir %s no-such-command: exit 0", c.Name())
		}
	}
	if err := execute("plugin"); err != nil {
		t.Errorf("weir plugin alone (its help): %v", err)
	}
	if groups < 4 {
		t.Errorf("only %d command groups: the walk lost them", groups)
	}
}

// A taken --nats-listen fails at once, naming the address and the flag, as
// --listen does (the embedded server would wait 10 s and guess).
func TestServeRefusesTakenNATSPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	_, _, err = runWeir("serve", "--nats-listen", addr, "--data-dir", t.TempDir(),
		"--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0")
	if want := "listen on " + addr + " (--nats-listen): "; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("serve on a taken NATS port: %v, want an error containing %q", err, want)
	}
}

// weir demo says where to watch it (dashboard, token, the CLI's
// environment), and a taken --listen port fails at once, naming the flag.
func TestDemoSaysWhereToWatch(t *testing.T) {
	out := demoAccess("http://127.0.0.1:8090", "tok-1", true)
	for _, want := range []string{
		"dashboard   http://127.0.0.1:8090/",
		`paste the admin token under "Admin token"`,
		"admin token tok-1",
		"export WEIR_SERVER=http://127.0.0.1:8090 WEIR_ADMIN_TOKEN=tok-1",
		"after the report, until interrupted",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo access lacks %q:\n%s", want, out)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = execute("demo", "--keep", "--listen", ln.Addr().String(), "--log", "")
	if err == nil || !strings.Contains(err.Error(), "(--listen)") {
		t.Errorf("demo on a taken port: %v, want an error naming --listen", err)
	}
}
