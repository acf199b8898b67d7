package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/canary"
	"github.com/weirhq/weir/router"
)

func init() { extraCommands = append(extraCommands, newCanaryCmd) }

func newCanaryCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "canary", Short: "Automated canary rollouts: start, watch, promote, pause, resume, abort"}

	var to, steps, variant, driftMode string
	var pluginFlags []string
	var interval time.Duration
	var maxErr, maxP99 float64
	var maxDrift string
	var minReq int64
	start := &cobra.Command{
		Use:   "start ROUTE (--to MODEL@VERSION | --plugin NAME@VERSION ...)",
		Short: "Start moving ROUTE's traffic to a new model version or plugin version, step by step, judged at each interval",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var model, version string
			if to != "" || len(pluginFlags) == 0 {
				var ok bool
				if model, version, ok = strings.Cut(to, "@"); !ok || model == "" || version == "" {
					return fmt.Errorf("--to %q: expected MODEL@VERSION (or --plugin NAME@VERSION for a plugin canary)", to)
				}
			}
			spec := map[string]any{"variant": variant, "interval": interval.String(), "min_requests": minReq}
			var ws []int
			for _, s := range strings.Split(steps, ",") {
				w, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil {
					return fmt.Errorf("--steps %q: expected weights like 5,25,50,100", steps)
				}
				ws = append(ws, w)
			}
			spec["steps"] = ws
			f := cmd.Flags()
			if f.Changed("max-error-rate") {
				spec["max_error_rate"] = maxErr
			}
			if f.Changed("max-p99") {
				spec["max_p99_ms"] = maxP99
			}
			if f.Changed("max-drift") {
				limit, err := driftLimit(maxDrift)
				if err != nil {
					return err
				}
				spec["max_drift"] = limit
			}
			if driftMode != "" {
				spec["drift_mode"] = driftMode
			}
			// Every flag is checked before a plugin canary's variant is
			// written to the route.
			if len(pluginFlags) > 0 {
				plugins, err := parsePluginFlags(pluginFlags)
				if err != nil {
					return err
				}
				if model, version, err = preparePluginCanary(cmd.Context(), cf, args[0], variant, model, version, plugins); err != nil {
					return err
				}
			}
			spec["model"], spec["version"] = model, version
			body, _ := json.Marshal(spec)
			out, err := cf.client().StartRollout(cmd.Context(), args[0], body)
			if err != nil {
				return err
			}
			if err := printRollout(cmd.OutOrStdout(), out); err != nil {
				return err
			}
			return printCanaryChains(cmd.Context(), cmd.OutOrStdout(), cf, out)
		},
	}
	f := start.Flags()
	f.StringVar(&to, "to", "", "the new model version, MODEL@VERSION (with --plugin: default the stable variant's)")
	f.StringArrayVar(&pluginFlags, "plugin", nil, "a plugin canary: the canary variant runs the stable variant's chains with this plugin at this version, NAME@VERSION (repeatable)")
	f.StringVar(&steps, "steps", "5,25,50,100", "canary weights, step by step, ending at 100")
	f.DurationVar(&interval, "interval", 30*time.Second, "time per step before it is judged")
	f.StringVar(&variant, "variant", "canary", "name of the canary variant")
	f.Float64Var(&maxErr, "max-error-rate", 0.01, "roll back when the canary's error rate is above this")
	f.Float64Var(&maxP99, "max-p99", 0, "roll back when the canary's p99 latency (ms) is above this")
	f.StringVar(&maxDrift, "max-drift", "", "roll back when the canary's answers lie further than this from the stable's over the same period (PSI per output; default 0.25), or \"off\" to judge no drift (a deliberately different model)")
	f.StringVar(&driftMode, "drift-mode", "", "relative (default): the drift monitor's figures are shown, not judged; absolute: the canary's own largest drift, inputs included, is judged against --max-drift too")
	f.Int64Var(&minReq, "min-requests", 100, "requests the canary must serve in a step before it is judged")

	var watch bool
	status := &cobra.Command{
		Use:   "status ROUTE",
		Short: "Show a rollout at a glance (--watch to follow it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fetch := func() ([]byte, error) { return cf.client().Rollout(cmd.Context(), args[0]) }
			w := cmd.OutOrStdout()
			if !watch {
				out, err := fetch()
				if err != nil {
					return err
				}
				if err := printRollout(w, out); err != nil {
					return err
				}
				return printCanaryChains(cmd.Context(), w, cf, out)
			}
			return watchRollout(cmd.Context(), w, isTerminal(w), time.Second, fetch)
		},
	}
	status.Flags().BoolVarP(&watch, "watch", "w", false, "follow the rollout until it ends: redrawn every second on a terminal, else a line per change")
	cmd.AddCommand(start, status)

	for _, action := range []string{"promote", "pause", "resume", "abort"} {
		action := action
		cmd.AddCommand(&cobra.Command{
			Use:   action + " ROUTE",
			Short: map[string]string{"promote": "Send all traffic to the canary now", "pause": "Hold the rollout at its current weight", "resume": "Continue a paused rollout", "abort": "Send all traffic back to stable now"}[action],
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				out, err := cf.client().RolloutAction(cmd.Context(), args[0], action)
				if err != nil {
					return err
				}
				return printRollout(cmd.OutOrStdout(), out)
			},
		})
	}
	return cmd
}

// watchRollout follows a rollout until it ends or ctx is done, fetching it
// every interval: on a terminal it redraws the status in place; elsewhere
// (a log, a pipe) it writes a line when the state, step, weight or
// decision changes, and the full status at the end, with no control codes.
func watchRollout(ctx context.Context, w io.Writer, tty bool, interval time.Duration, fetch func() ([]byte, error)) error {
	last := ""
	for {
		out, err := fetch()
		if err != nil {
			return err
		}
		var st canary.Status
		if err := json.Unmarshal(out, &st); err != nil {
			return fmt.Errorf("decode the rollout: %w", err)
		}
		done := st.State == canary.Promoted || st.State == canary.RolledBack
		switch {
		case tty:
			fmt.Fprint(w, "\033[H\033[2J")
			if err := printRollout(w, out); err != nil {
				return err
			}
		case done:
			if err := printRollout(w, out); err != nil {
				return err
			}
		default:
			if key := fmt.Sprint(st.State, st.Step, st.Weight, st.Decision, st.Waiting); key != last {
				last = key
				fmt.Fprintln(w, rolloutLine(st))
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// rolloutLine is a rollout on one line, stamped with the time of its last
// change.
func rolloutLine(st canary.Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s route %s: %s weight %d%% step %d of %d", st.UpdatedAt.Local().Format(time.TimeOnly), st.Route,
		strings.ToUpper(string(st.State)), st.Weight, min(st.Step+1, len(st.Spec.Steps)), len(st.Spec.Steps))
	for _, name := range slices.Sorted(maps.Keys(st.Variants)) {
		v := st.Variants[name]
		fmt.Fprintf(&b, "; %s %d req %.2f%% err p99 %.1fms", name, v.Requests, 100*v.ErrorRate, v.P99Ms)
	}
	if st.Reason != "" {
		fmt.Fprintf(&b, "; %s: %s", st.Decision, st.Reason)
	}
	return b.String()
}

// isTerminal reports whether w is a terminal (a character device), where
// redrawing in place is welcome.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printRollout shows a rollout for a person: state, weight as a bar, step
// k of n, per-variant numbers and the reason of the last decision.
func printRollout(w io.Writer, b []byte) error {
	var st canary.Status
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	n := len(st.Spec.Steps)
	fmt.Fprintf(w, "route %s: %s  variant %q -> %s@%s\n", st.Route, strings.ToUpper(string(st.State)), st.Spec.Variant, st.Spec.Model, st.Spec.Version)
	fmt.Fprintf(w, "  weight %3d%% %s  step %d of %d (%v each)\n", st.Weight, bar(st.Weight, 30), min(st.Step+1, n), n, time.Duration(st.Spec.Interval))
	names := make([]string, 0, len(st.Variants))
	for name := range st.Variants {
		names = append(names, name)
	}
	sort.Strings(names)
	if len(names) > 0 {
		fmt.Fprintf(w, "  %-10s %9s %8s %10s\n", "variant", "requests", "errors", "p99")
	}
	for _, name := range names {
		v := st.Variants[name]
		fmt.Fprintf(w, "  %-10s %9d %7.2f%% %8.1fms\n", name, v.Requests, 100*v.ErrorRate, v.P99Ms)
	}
	if st.Drift != nil {
		fmt.Fprintf(w, "  drift %.3f\n", *st.Drift)
	}
	if st.Reason != "" {
		fmt.Fprintf(w, "  last decision: %s: %s\n", st.Decision, st.Reason)
	}
	return nil
}

// driftLimit reads --max-drift: a number >= 0, or "off".
func driftLimit(s string) (any, error) {
	if s == "off" {
		return s, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return nil, fmt.Errorf("--max-drift %q: expected a number >= 0 (PSI), or off", s)
	}
	return v, nil
}

// preparePluginCanary readies a plugin canary on route: it gives the canary
// variant (weight 0) the stable variant's model (or model@version, from
// --to) and the stable variant's chains with each plugin of plugins at its
// new version, and returns the model and version the
// rollout targets. The rollout then moves traffic to it like any canary.
func preparePluginCanary(ctx context.Context, cf *clientFlags, route, variant, model, version string, plugins []pluginView) (string, string, error) {
	c := cf.client()
	if b, err := c.Rollout(ctx, route); err == nil {
		var st canary.Status
		if json.Unmarshal(b, &st) == nil && (st.State == canary.Progressing || st.State == canary.Paused) {
			return "", "", fmt.Errorf("route %s already has a %s rollout at %d%%: abort or promote it first", route, st.State, st.Weight)
		}
	}
	b, err := c.GetRoute(ctx, route)
	if err != nil {
		return "", "", err
	}
	r, err := router.Parse(route, b)
	if err != nil {
		return "", "", fmt.Errorf("route %s: %w", route, err)
	}
	cfg := r.Config()
	stable := -1
	for i, v := range cfg.Variants { // the rollout's rule: the first other variant
		if v.Name != variant {
			stable = i
			break
		}
	}
	if stable < 0 {
		return "", "", fmt.Errorf("route %s has no variant other than %q to act as the stable variant", route, variant)
	}
	sv := cfg.Variants[stable]
	if model == "" {
		model, version = sv.Model, sv.Version
	}
	pre, post := slices.Clone(r.PluginsFor(&sv)), slices.Clone(r.PostprocessFor(&sv))
	var changed [2]bool
	for _, p := range plugins {
		name, v := p.Name, p.Version
		found := false
		for c, chain := range [][]router.PluginRef{pre, post} {
			for i := range chain {
				if chain[i].Name == name {
					chain[i].Version, found, changed[c] = v, true, true
				}
			}
		}
		if !found {
			return "", "", fmt.Errorf("--plugin %s@%s: variant %q of route %s runs no plugin %s (plugins: %s; postprocess: %s)",
				name, v, sv.Name, route, name, refsText(pre), refsText(post))
		}
	}
	// A chain of its own where it differs from the route's, or where the
	// stable variant has its own.
	cv := router.Variant{Name: variant, Model: model, Version: version}
	if changed[0] || sv.Plugins != nil {
		cv.Plugins = &pre
	}
	if changed[1] || sv.Postprocess != nil {
		cv.Postprocess = &post
	}
	i := slices.IndexFunc(cfg.Variants, func(v router.Variant) bool { return v.Name == variant })
	if i < 0 {
		cfg.Variants = append(cfg.Variants, cv)
	} else {
		cfg.Variants[i] = cv
	}
	body, err := json.Marshal(cfg)
	if err != nil {
		return "", "", err
	}
	if err := c.SetRoute(ctx, route, body); err != nil {
		return "", "", fmt.Errorf("give route %s the canary variant %q: %w", route, variant, err)
	}
	return model, version, nil
}

// parsePluginFlags reads --plugin NAME@VERSION flags.
func parsePluginFlags(flags []string) ([]pluginView, error) {
	out := make([]pluginView, len(flags))
	for i, p := range flags {
		name, v, ok := strings.Cut(p, "@")
		if !ok || name == "" || v == "" {
			return nil, fmt.Errorf("--plugin %q: expected NAME@VERSION", p)
		}
		out[i] = pluginView{name, v}
	}
	return out, nil
}

// refsText is a chain as "a@1 -> b@latest" ("none" when empty).
func refsText(ps []router.PluginRef) string {
	vs := make([]pluginView, len(ps))
	for i, p := range ps {
		vs[i] = pluginView{p.Name, p.Version}
	}
	return chainText(vs)
}

// printCanaryChains adds to a rollout's status the chains its canary runs
// where they differ from the stable variant's: what a plugin canary
// changes. A route it cannot read adds nothing.
func printCanaryChains(ctx context.Context, w io.Writer, cf *clientFlags, rollout []byte) error {
	var st canary.Status
	if err := json.Unmarshal(rollout, &st); err != nil {
		return err
	}
	b, err := cf.client().GetRoute(ctx, st.Route)
	if err != nil {
		return nil
	}
	r, err := router.Parse(st.Route, b)
	if err != nil {
		return nil
	}
	var cv, sv *router.Variant
	vs := r.Variants()
	for i := range vs {
		switch vs[i].Name {
		case st.Spec.Variant:
			cv = &vs[i]
		case st.Stable:
			sv = &vs[i]
		}
	}
	if cv == nil || sv == nil {
		return nil
	}
	for _, c := range []struct {
		label          string
		canary, stable []router.PluginRef
	}{
		{"plugins", r.PluginsFor(cv), r.PluginsFor(sv)},
		{"postprocess", r.PostprocessFor(cv), r.PostprocessFor(sv)},
	} {
		if ct, stt := refsText(c.canary), refsText(c.stable); ct != stt {
			fmt.Fprintf(w, "  %s: canary %s, stable %s\n", c.label, ct, stt)
		}
	}
	return nil
}
