package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/internal/jsonx"
	"github.com/weirhq/weir/models"
	"github.com/weirhq/weir/plugins"
	"github.com/weirhq/weir/sdk/client"
)

// newPluginRunCmd is `weir plugin run`: one plugin call in a local host,
// for plugin authors (plugins.RunOnce does the work).
func newPluginRunCmd(cf *clientFlags) *cobra.Command {
	var input, config, model string
	var features []string
	var o plugins.RunOptions
	var memoryMB int
	cmd := &cobra.Command{
		Use:   "run FILE.wasm --input JSON|@file [--config JSON] [--features ENTITY=JSON ...]",
		Short: "Run one plugin call locally, as the gateway would (no gateway, model or NATS needed)",
		Long: `Run one call of a Wasm plugin in the same host the gateway uses: the same ABI
checks, limits (deadline, memory cap), sandbox and log capture, with no gateway,
ONNX Runtime or NATS. Prints the output JSON on stdout, and the plugin's log
lines and the call's time on stderr. Exits non-zero when the call fails or
the gateway would refuse its output (not one valid JSON object). With
--model NAME@VERSION (VERSION may be latest), the output is also checked
against that model's feature list, fetched from --server: a feature missing
or of a wrong type is named, as the gateway would name it.`,
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
			var features []string
			if model != "" {
				if features, err = modelFeatures(cmd.Context(), cf, model); err != nil {
					return err
				}
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
			label := fmt.Sprintf("plugin %q", o.Name+"@"+o.Version)
			// The gateway decodes every plugin output with this function and
			// answers 502 when it fails.
			row, err := jsonx.DecodeObject(res.Output)
			if err != nil || row == nil {
				if err == nil {
					err = errors.New("got null")
				}
				return fmt.Errorf("%s returned output the gateway refuses (502): not one JSON object: %w (output starts %.64q)", label, err, res.Output)
			}
			if err := models.CheckFeatures(features, row); err != nil {
				return fmt.Errorf("%s: its output lacks what model %s needs (502 in the gateway): %s; the model's features are %s, the output's keys %s",
					label, model, strings.ReplaceAll(err.Error(), "\n", "; "), strings.Join(features, ","), slices.Sorted(maps.Keys(row)))
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
	cmd.Flags().StringVar(&model, "model", "", "also check the output against this model's feature list, NAME@VERSION or NAME@latest (from --server)")
	cmd.Flags().StringVar(&o.Name, "name", "", "plugin name in messages (default: the file name)")
	cmd.Flags().StringVar(&o.Version, "version", "local", "plugin version in messages")
	cmd.MarkFlagRequired("input")
	return cmd
}

// modelFeatures is the feature list of a model version (NAME@VERSION,
// VERSION may be latest) on the gateway.
func modelFeatures(ctx context.Context, cf *clientFlags, ref string) ([]string, error) {
	name, version, ok := strings.Cut(ref, "@")
	if !ok || name == "" || version == "" {
		return nil, fmt.Errorf("--model %q: expected NAME@VERSION (or NAME@latest)", ref)
	}
	var m client.ModelInfo
	if err := cf.client().Get(ctx, "/v1/models/"+url.PathEscape(name), &m); err != nil {
		return nil, fmt.Errorf("--model %s: %w", ref, err)
	}
	if version == "latest" {
		version = m.Latest
	}
	for _, v := range m.Versions {
		if v.Version != version {
			continue
		}
		if len(v.Features) == 0 {
			return nil, fmt.Errorf("--model %s: the version has no feature list (upload it with --features a,b,c or reference data)", ref)
		}
		return v.Features, nil
	}
	return nil, fmt.Errorf("--model %s: model %s has no version %q", ref, name, version)
}
