package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/sdk/client"
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	server    string
	tokenFlag string
	dataDir   string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.server, "server", envOr("WEIR_SERVER", "http://127.0.0.1:8080"), "gateway URL")
	cmd.PersistentFlags().StringVar(&f.tokenFlag, "token", "", "admin token (default: $WEIR_ADMIN_TOKEN, then <data-dir>/admin-token)")
	cmd.PersistentFlags().StringVar(&f.dataDir, "data-dir", "weir-data", "data dir of the local gateway, to read its admin token")
}

// client returns an SDK client for --server with the admin token.
func (f *clientFlags) client() *client.Client {
	return client.New(f.server, f.token())
}

// token is the admin token from the flag, the environment or the local
// data dir.
func (f *clientFlags) token() string {
	if f.tokenFlag != "" {
		return f.tokenFlag
	}
	if tok := os.Getenv("WEIR_ADMIN_TOKEN"); tok != "" {
		return tok
	}
	if b, err := os.ReadFile(filepath.Join(f.dataDir, gateway.TokenFile)); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}

// natsURL is the NATS URL a client command uses: the flag, then
// $WEIR_NATS_URL, then the local gateway's <data-dir>/nats-url (which
// carries the embedded server's credentials), then the default address.
func (f *clientFlags) natsURL(flag string) string {
	if flag != "" {
		return flag
	}
	if u := os.Getenv("WEIR_NATS_URL"); u != "" {
		return u
	}
	if u, err := natsx.ReadURLFile(filepath.Join(f.dataDir, natsx.URLFile)); err == nil {
		return u
	}
	return "nats://127.0.0.1:4222"
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "weir",
		Short:         "weir serves ONNX models behind WebAssembly feature plugins, with canaries and drift monitoring",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cf := &clientFlags{}
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
	return root
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
