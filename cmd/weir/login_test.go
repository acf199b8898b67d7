package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/testgw"
	"github.com/weirhq/weir/sdk/client"
)

// Away from the repository's root, client commands find the gateway and its
// token through the environment, --token-file or what weir login saved,
// and a 401 says where the token came from or where it was looked for.
func TestClientFindsTokenAnywhere(t *testing.T) {
	g := testgw.Start(t)
	config := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config)
	t.Setenv("WEIR_ADMIN_TOKEN", "")
	t.Setenv("WEIR_SERVER", g.URL)
	t.Chdir(t.TempDir()) // a notebook's directory: no weir-data here
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	statusOf := func(err error) int {
		var ce *client.Error
		if errors.As(err, &ce) {
			return ce.Status
		}
		return 0
	}

	_, _, err = runWeir("plugin", "rm", "nope", "1")
	want := "no admin token: none found; looked in --token, --token-file, $WEIR_ADMIN_TOKEN, " +
		filepath.Join(config, "weir", "config") + " (weir login), " + filepath.Join(cwd, "weir-data", "admin-token")
	if statusOf(err) != 401 || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "weir login --server URL --token-file FILE") {
		t.Fatalf("a write without a token: %v\nwant a 401 saying %q and how to give one", err, want)
	}

	if _, _, err = runWeir("login"); err == nil || !strings.Contains(err.Error(), "no admin token on stdin (pass --token-file FILE or set $WEIR_ADMIN_TOKEN)") {
		t.Errorf("login with no token anywhere: %v", err)
	}

	t.Setenv("WEIR_ADMIN_TOKEN", "wrong")
	if _, _, err = runWeir("plugin", "rm", "nope", "1"); statusOf(err) != 401 || !strings.Contains(err.Error(), "came from $WEIR_ADMIN_TOKEN") {
		t.Errorf("a wrong token from the environment: %v, want a 401 naming $WEIR_ADMIN_TOKEN", err)
	}
	if _, _, err = runWeir("login"); err == nil || !strings.Contains(err.Error(), "the gateway refused the token") {
		t.Errorf("login with a wrong token: %v", err)
	}
	t.Setenv("WEIR_ADMIN_TOKEN", "")

	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(g.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err = runWeir("plugin", "rm", "nope", "1", "--token-file", tokenFile); statusOf(err) != 404 {
		t.Errorf("a write with --token-file: %v, want the 404 of a missing plugin", err)
	}
	if _, _, err = runWeir("plugin", "ls", "--token-file", filepath.Join(cwd, "missing")); err == nil || !strings.Contains(err.Error(), "--token-file") {
		t.Errorf("a missing --token-file: %v, want an error naming the flag", err)
	}

	out, _, err := runWeir("login", "--token-file", tokenFile)
	if err != nil || !strings.Contains(out, "logged in to "+g.URL) {
		t.Fatalf("weir login: %v\n%s", err, out)
	}
	path := filepath.Join(config, "weir", "config")
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config %s: %v, mode %v; want mode 0600", path, err, fi.Mode())
	}
	// The saved server and token serve with neither in the environment.
	t.Setenv("WEIR_SERVER", "")
	if _, _, err = runWeir("plugin", "rm", "nope", "1"); statusOf(err) != 404 {
		t.Errorf("a write after weir login: %v, want the 404 of a missing plugin", err)
	}
}
