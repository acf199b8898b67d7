package main

import (
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
	return root
}

// extraCommands are command groups registered by other files of this
// package (plugins, routes, canary, ...).
var extraCommands []func(*clientFlags) *cobra.Command
