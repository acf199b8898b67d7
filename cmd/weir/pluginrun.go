package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/plugins"
)

// newPluginRunCmd is `weir plugin run`: one plugin call in a local host,
// for plugin authors (plugins.RunOnce does the work).
func newPluginRunCmd() *cobra.Command {
	var input, config string
	var features []string
	var o plugins.RunOptions
	var memoryMB int
	cmd := &cobra.Command{
		Use:   "run FILE.wasm --input JSON|@file [--config JSON] [--features ENTITY=JSON ...]",
		Short: "Run one plugin call locally, as the gateway would (no gateway, model or NATS needed)",
		Long: `Run one call of a Wasm plugin in the same host the gateway uses: the same ABI
checks, limits (deadline, memory cap), sandbox and log capture, with no gateway,
ONNX Runtime or NATS. Prints the output JSON on stdout, and the plugin's log
lines and the call's time on stderr. Exits non-zero when the call fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			wasm, err := readData("@" + args[0])
			if err != nil {
				return err
			}
			if o.Input, err = readData(input); err != nil {
				return fmt.Errorf("--input: %w", err)
			}
			if config != "" {
				if o.Config, err = readData(config); err != nil {
					return fmt.Errorf("--config: %w", err)
				}
			}
			for _, f := range features {
				entity, js, ok := strings.Cut(f, "=")
				if !ok || entity == "" {
					return fmt.Errorf("--features %q: expected ENTITY=JSON (or ENTITY=@file)", f)
				}
				b, err := readData(js)
				if err != nil {
					return fmt.Errorf("--features %s: %w", entity, err)
				}
				if o.Features == nil {
					o.Features = map[string][]byte{}
				}
				o.Features[entity] = b
			}
			if memoryMB < 0 || memoryMB > 4096 {
				return fmt.Errorf("--memory-mb %d: expected 1 to 4096", memoryMB)
			}
			o.Limits.MemoryPages = uint32(memoryMB * 16)
			if o.Name == "" {
				o.Name = strings.TrimSuffix(filepath.Base(args[0]), ".wasm")
			}
			// Compiled modules are kept between runs where a cache dir can be made.
			if dir, err := os.UserCacheDir(); err == nil && os.MkdirAll(filepath.Join(dir, "weir", "wasm"), 0o700) == nil {
				o.CacheDir = filepath.Join(dir, "weir", "wasm")
			}
			res, err := plugins.RunOnce(cmd.Context(), wasm, o)
			stderr := cmd.ErrOrStderr()
			plugins.WriteLogs(stderr, res.Logs)
			if err != nil {
				return err
			}
			var pretty bytes.Buffer
			if json.Indent(&pretty, res.Output, "", "  ") != nil {
				pretty.Reset()
				pretty.Write(res.Output)
			}
			fmt.Fprintln(cmd.OutOrStdout(), pretty.String())
			fmt.Fprintf(stderr, "ok in %s (limits: timeout %s, memory %d MiB)\n",
				res.Duration.Round(time.Microsecond), res.Limits.Timeout, res.Limits.MemoryPages/16)
			return nil
		},
	}
	cmd.Flags().StringVar(&input, "input", "", "the event, a JSON object, or @file (@- for stdin)")
	cmd.Flags().StringVar(&config, "config", "", "the route's config for the plugin, a JSON object, or @file")
	cmd.Flags().StringArrayVar(&features, "features", nil, "online features of an entity, ENTITY=JSON or ENTITY=@file (repeatable)")
	cmd.Flags().DurationVar(&o.Limits.Timeout, "timeout", 0, "deadline of the call (default 20ms, as in the gateway)")
	cmd.Flags().IntVar(&memoryMB, "memory-mb", 0, "most memory the instance may use (default 16)")
	cmd.Flags().StringVar(&o.Name, "name", "", "plugin name in messages (default: the file name)")
	cmd.Flags().StringVar(&o.Version, "version", "local", "plugin version in messages")
	cmd.MarkFlagRequired("input")
	return cmd
}
