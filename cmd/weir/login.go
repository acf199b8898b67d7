package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/sdk/client"
)

func init() { extraCommands = append(extraCommands, newLoginCmd) }

// userConfig is what `weir login` writes, so that client commands (and the
// Python client) find the gateway and its admin token from any directory.
type userConfig struct {
	Server string `json:"server,omitempty"`
	Token  string `json:"token,omitempty"`
}

// userConfigPath is $XDG_CONFIG_HOME/weir/config (~/.config/weir/config
// when it is unset; the platform's config dir elsewhere).
func userConfigPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "weir", "config"), nil
}

// readUserConfig reads the per-user config; a missing file is an empty
// config, not an error.
func readUserConfig() (userConfig, string, error) {
	var c userConfig
	path, err := userConfigPath()
	if err != nil {
		return c, "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, path, nil
	}
	if err != nil {
		return c, path, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, path, fmt.Errorf("%s: %w (rewrite it with weir login)", path, err)
	}
	return c, path, nil
}

func writeUserConfig(c userConfig) (string, error) {
	path, err := userConfigPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	// Written beside, then renamed: a reader never sees half a file, and
	// the token is never readable by others, even for a moment.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(b, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

func newLoginCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "login [--server URL] [--token-file FILE]",
		Short: "Remember a gateway and its admin token for client commands run from any directory",
		Long: `login checks the admin token against the gateway and writes both into
$XDG_CONFIG_HOME/weir/config (~/.config/weir/config; mode 0600), where client
commands and the Python client look when --server, $WEIR_SERVER, --token,
--token-file and $WEIR_ADMIN_TOKEN are not given. The token is taken from
--token-file, $WEIR_ADMIN_TOKEN or the local <data-dir>/admin-token, else read
from stdin (weir serve writes a generated token to <data-dir>/admin-token).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			server := cf.serverURL()
			tok, _ := cf.token()
			if tok == "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "admin token (the gateway's <data-dir>/admin-token):")
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if tok = strings.TrimSpace(line); tok == "" && err != nil {
					return fmt.Errorf("no admin token on stdin (pass --token-file FILE or set $WEIR_ADMIN_TOKEN): %w", err)
				}
				if tok == "" {
					return errors.New("an empty admin token on stdin: pass --token-file FILE or set $WEIR_ADMIN_TOKEN")
				}
			}
			if err := checkToken(cmd, client.New(server, tok)); err != nil {
				return err
			}
			path, err := writeUserConfig(userConfig{Server: server, Token: tok})
			if err != nil {
				return fmt.Errorf("write the weir config: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged in to %s; server and token saved in %s\n", server, path)
			return nil
		},
	}
}

// checkToken proves the token against the gateway with an admin call that
// cannot change anything: deleting a feature set whose name is invalid. A
// valid token gets past the token check to the name's 400; another gets 401.
func checkToken(cmd *cobra.Command, c *client.Client) error {
	err := c.Send(cmd.Context(), "DELETE", "/v1/featuresets/-", nil, nil)
	var ce *client.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce) && ce.Status == 401:
		return fmt.Errorf("the gateway refused the token: %w", err)
	case errors.As(err, &ce):
		return nil
	}
	return err
}
