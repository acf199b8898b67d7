package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newRouteCmd) }

func newRouteCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "route", Short: "Configure routes: plugin chains, traffic splits, stickiness, shadow"}
	var file string
	set := &cobra.Command{
		Use:   "set ROUTE -f route.json",
		Short: "Create or replace a route from a JSON file (- for stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := readData("@" + file)
			if err != nil {
				return err
			}
			if err := cf.client().SetRoute(cmd.Context(), args[0], body); err != nil {
				return err
			}
			fmt.Printf("route %s set\n", args[0])
			return nil
		},
	}
	set.Flags().StringVarP(&file, "file", "f", "", "route JSON file (- for stdin)")
	set.MarkFlagRequired("file")

	var raw bool
	get := &cobra.Command{
		Use:   "get ROUTE",
		Short: "Show a route: its chain and traffic split",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := cf.client().GetRoute(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if raw {
				var out bytes.Buffer
				json.Indent(&out, b, "", "  ")
				fmt.Println(out.String())
				return nil
			}
			return printRoute(cmd.OutOrStdout(), b)
		},
	}
	get.Flags().BoolVar(&raw, "json", false, "print the route's JSON")

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List routes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Routes []json.RawMessage `json:"routes"`
			}
			if err := cf.client().Get(cmd.Context(), "/v1/routes", &out); err != nil {
				return err
			}
			if len(out.Routes) == 0 {
				fmt.Println("no routes yet: weir route set ROUTE -f route.json")
			}
			for _, r := range out.Routes {
				if err := printRoute(cmd.OutOrStdout(), r); err != nil {
					return err
				}
				fmt.Println()
			}
			return nil
		},
	}
	rm := &cobra.Command{
		Use:   "rm ROUTE",
		Short: "Remove a route",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.client().DeleteRoute(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Printf("route %s removed\n", args[0])
			return nil
		},
	}
	var window time.Duration
	stats := &cobra.Command{
		Use:   "stats ROUTE",
		Short: "Compare a route's variants on live traffic: requests, errors, latency, outputs (A/B)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Variants map[string]struct {
					Requests  int64   `json:"requests"`
					ErrorRate float64 `json:"error_rate"`
					P50Ms     float64 `json:"p50_ms"`
					P99Ms     float64 `json:"p99_ms"`
					Outputs   map[string]struct {
						Mean, Min, Max float64
					} `json:"outputs"`
				} `json:"variants"`
			}
			path := "/v1/routes/" + url.PathEscape(args[0]) + "/stats?window=" + url.QueryEscape(window.String())
			if err := cf.client().Get(cmd.Context(), path, &out); err != nil {
				return err
			}
			if len(out.Variants) == 0 {
				fmt.Printf("no traffic on route %s in the last %v\n", args[0], window)
				return nil
			}
			names := make([]string, 0, len(out.Variants))
			for n := range out.Variants {
				names = append(names, n)
			}
			sort.Strings(names)
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VARIANT\tREQUESTS\tERRORS\tP50\tP99\tOUTPUTS (mean)")
			for _, n := range names {
				v := out.Variants[n]
				var outs []string
				for name, o := range v.Outputs {
					outs = append(outs, fmt.Sprintf("%s %.4g", name, o.Mean))
				}
				sort.Strings(outs)
				fmt.Fprintf(w, "%s\t%d\t%.2f%%\t%.2fms\t%.2fms\t%s\n", n, v.Requests, 100*v.ErrorRate, v.P50Ms, v.P99Ms, strings.Join(outs, ", "))
			}
			return w.Flush()
		},
	}
	stats.Flags().DurationVar(&window, "window", 15*time.Minute, "how far back")
	cmd.AddCommand(set, get, ls, rm, stats)
	return cmd
}

type pluginView struct{ Name, Version string }

type routeView struct {
	Name        string       `json:"name"`
	Plugins     []pluginView `json:"plugins"`
	Postprocess []pluginView `json:"postprocess"`
	Variants    []struct {
		Name, Model, Version string
		Weight               int
		// A variant's own chains (nil: the route's).
		Plugins     *[]pluginView `json:"plugins"`
		Postprocess *[]pluginView `json:"postprocess"`
	} `json:"variants"`
	Sticky *struct{ Header, Field string } `json:"sticky"`
	Shadow *struct {
		Model, Version string
		Percent        float64
	} `json:"shadow"`
}

// chainText is a plugin chain as "a@1 -> b@latest" ("none" when empty).
func chainText(ps []pluginView) string {
	if len(ps) == 0 {
		return "none"
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name + "@" + orLatest(p.Version)
	}
	return strings.Join(names, " -> ")
}

// printRoute writes a route: its chains, then each variant with the chains
// it runs instead of the route's, if any.
func printRoute(w io.Writer, b []byte) error {
	var r routeView
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	fmt.Fprintf(w, "route %s\n", r.Name)
	if len(r.Plugins) > 0 {
		fmt.Fprintf(w, "  %-12s %s\n", "plugins", chainText(r.Plugins))
	}
	if len(r.Postprocess) > 0 {
		fmt.Fprintf(w, "  %-12s %s\n", "postprocess", chainText(r.Postprocess))
	}
	for _, v := range r.Variants {
		fmt.Fprintf(w, "  %-12s %3d%% %s  %s@%s\n", v.Name, v.Weight, bar(v.Weight, 20), v.Model, orLatest(v.Version))
		if v.Plugins != nil {
			fmt.Fprintf(w, "  %-12s   own plugins: %s\n", "", chainText(*v.Plugins))
		}
		if v.Postprocess != nil {
			fmt.Fprintf(w, "  %-12s   own postprocess: %s\n", "", chainText(*v.Postprocess))
		}
	}
	if r.Sticky != nil {
		if r.Sticky.Header != "" {
			fmt.Fprintf(w, "  sticky by header %s\n", r.Sticky.Header)
		} else {
			fmt.Fprintf(w, "  sticky by field %s\n", r.Sticky.Field)
		}
	}
	if r.Shadow != nil {
		fmt.Fprintf(w, "  shadow       %g%% to %s@%s\n", r.Shadow.Percent, r.Shadow.Model, orLatest(r.Shadow.Version))
	}
	return nil
}

func orLatest(v string) string {
	if v == "" {
		return "latest"
	}
	return v
}

// bar draws pct as a bar of width cells.
func bar(pct, width int) string {
	full := pct * width / 100
	return "[" + strings.Repeat("#", full) + strings.Repeat(".", width-full) + "]"
}
