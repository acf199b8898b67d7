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
)

func init() { extraCommands = append(extraCommands, newCanaryCmd) }

func newCanaryCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "canary", Short: "Automated canary rollouts: start, watch, promote, pause, resume, abort"}

	var to, steps, variant, driftMode string
	var interval time.Duration
	var maxErr, maxP99 float64
	var maxDrift string
	var minReq int64
	start := &cobra.Command{
		Use:   "start ROUTE --to MODEL@VERSION",
		Short: "Start moving ROUTE's traffic to a new model version, step by step, judged at each interval",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			model, version, ok := strings.Cut(to, "@")
			if !ok || model == "" || version == "" {
				return fmt.Errorf("--to %q: expected MODEL@VERSION", to)
			}
			spec := map[string]any{"variant": variant, "model": model, "version": version,
				"interval": interval.String(), "min_requests": minReq}
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
			body, _ := json.Marshal(spec)
			out, err := cf.client().StartRollout(cmd.Context(), args[0], body)
			if err != nil {
				return err
			}
			return printRollout(cmd.OutOrStdout(), out)
		},
	}
	f := start.Flags()
	f.StringVar(&to, "to", "", "the new model version, MODEL@VERSION")
	f.StringVar(&steps, "steps", "5,25,50,100", "canary weights, step by step, ending at 100")
	f.DurationVar(&interval, "interval", 30*time.Second, "time per step before it is judged")
	f.StringVar(&variant, "variant", "canary", "name of the canary variant")
	f.Float64Var(&maxErr, "max-error-rate", 0.01, "roll back when the canary's error rate is above this")
	f.Float64Var(&maxP99, "max-p99", 0, "roll back when the canary's p99 latency (ms) is above this")
	f.StringVar(&maxDrift, "max-drift", "", "roll back when the canary's answers lie further than this from the stable's over the same period (PSI per output; default 0.25), or \"off\" to judge no drift (a deliberately different model)")
	f.StringVar(&driftMode, "drift-mode", "", "relative (default): the drift monitor's figures are shown, not judged; absolute: the canary's own largest drift, inputs included, is judged against --max-drift too")
	f.Int64Var(&minReq, "min-requests", 100, "requests the canary must serve in a step before it is judged")
	start.MarkFlagRequired("to")

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
				return printRollout(w, out)
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
