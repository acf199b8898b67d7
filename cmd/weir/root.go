package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/sdk/client"
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	server    string
	tokenFlag string
	tokenFile string
	dataDir   string
}

const defaultServer = "http://127.0.0.1:8080"

func (f *clientFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.server, "server", "", "gateway URL (default: $WEIR_SERVER, then the one weir login saved, then "+defaultServer+")")
	pf.StringVar(&f.tokenFlag, "token", "", "admin token (visible in ps: prefer --token-file or $WEIR_ADMIN_TOKEN)")
	pf.StringVar(&f.tokenFile, "token-file", "", "file holding the admin token (e.g. the gateway's <data-dir>/admin-token)")
	pf.StringVar(&f.dataDir, "data-dir", "weir-data", "data dir of a local gateway: its admin-token is the last place the token is looked for")
}

// client returns an SDK client for the server with the admin token.
func (f *clientFlags) client() *client.Client {
	tok, _ := f.token()
	return client.New(f.serverURL(), tok)
}

// serverURL is --server, else $WEIR_SERVER, else what weir login saved,
// else the local default.
func (f *clientFlags) serverURL() string {
	if f.server != "" {
		return f.server
	}
	if s := os.Getenv("WEIR_SERVER"); s != "" {
		return s
	}
	if c, _, err := readUserConfig(); err == nil && c.Server != "" {
		return c.Server
	}
	return defaultServer
}

// token is the admin token and where it came from, looked for in order:
// --token, --token-file, $WEIR_ADMIN_TOKEN, the config weir login wrote,
// and last a local gateway's <data-dir>/admin-token. With none, from lists
// the places looked at, for a message.
func (f *clientFlags) token() (tok, from string) {
	if f.tokenFlag != "" {
		return f.tokenFlag, "--token"
	}
	if f.tokenFile != "" {
		return readTokenFile(f.tokenFile), "--token-file " + f.tokenFile
	}
	if tok := os.Getenv("WEIR_ADMIN_TOKEN"); tok != "" {
		return tok, "$WEIR_ADMIN_TOKEN"
	}
	looked := []string{"--token", "--token-file", "$WEIR_ADMIN_TOKEN"}
	switch c, path, err := readUserConfig(); {
	case err != nil:
		looked = append(looked, err.Error())
	case c.Token != "":
		return c.Token, path + " (weir login)"
	default:
		looked = append(looked, path+" (weir login)")
	}
	path, err := filepath.Abs(filepath.Join(f.dataDir, gateway.TokenFile))
	if err != nil {
		path = filepath.Join(f.dataDir, gateway.TokenFile)
	}
	if tok := readTokenFile(path); tok != "" {
		return tok, path
	}
	return "", "none found; looked in " + strings.Join(append(looked, path), ", ")
}

func readTokenFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// checkTokenFile refuses an unreadable or empty --token-file at once,
// rather than as a 401 after the request.
func (f *clientFlags) checkTokenFile() error {
	if f.tokenFile == "" {
		return nil
	}
	b, err := os.ReadFile(f.tokenFile)
	if err != nil {
		return fmt.Errorf("--token-file: %w", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return fmt.Errorf("--token-file %s: the file is empty", f.tokenFile)
	}
	return nil
}

// explainAuth adds to a 401 from the gateway where the token sent came
// from, or where none was found, and how to give one.
func (f *clientFlags) explainAuth(err error) error {
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 401 {
		return err
	}
	tok, from := f.token()
	if tok != "" {
		return fmt.Errorf("%w\nthe admin token sent came from %s: is it the token of the gateway at %s?", err, from, f.serverURL())
	}
	return fmt.Errorf("%w\nno admin token: %s.\nGive the gateway's token (weir serve writes it to <data-dir>/admin-token) as $WEIR_ADMIN_TOKEN or --token-file FILE, or save it once with weir login --server URL --token-file FILE", err, from)
}

func newRoot() *cobra.Command {
	root, _ := newRootFlags()
	return root
}

// newRootFlags returns the command tree and the client flags its commands
// share.
func newRootFlags() (*cobra.Command, *clientFlags) {
	cf := &clientFlags{}
	root := &cobra.Command{
		Use:           "weir",
		Short:         "weir serves ONNX models behind WebAssembly feature plugins, with canaries and drift monitoring",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return cf.checkTokenFile()
		},
	}
	cf.register(root)
	root.AddCommand(
		newServeCmd(),
		newModelCmd(cf),
		newInferCmd(cf),
	)
	for _, add := range extraCommands {
		root.AddCommand(add(cf))
	}
	refuseUnknownSubcommands(root)
	return root, cf
}

// refuseUnknownSubcommands makes every command group below the root refuse
// a word that names none of its subcommands, as cobra does for the root:
// "unknown command" with suggestions and a non-zero exit, where cobra would
// print the group's help and exit 0 (and a script would carry on).
func refuseUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !c.HasParent() || !c.HasSubCommands() || c.Runnable() {
		return
	}
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's default, set only for the root
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return fmt.Errorf("%s (see %s --help)", msg, cmd.CommandPath())
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}

// extraCommands are command groups registered by other files of this
// package (plugins, routes, canary, ...).
var extraCommands []func(*clientFlags) *cobra.Command
