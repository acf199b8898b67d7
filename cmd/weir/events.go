package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/monitor"
)

func init() { extraCommands = append(extraCommands, newEventsCmd) }

func newEventsCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Work with the archived inference events"}
	var route, out string
	var since time.Duration
	export := &cobra.Command{
		Use:   "export --route R --since 1h [-o events.parquet]",
		Short: "Write a route's archived events (Parquet, from <data-dir>/archive) into one file for a notebook",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				out = fmt.Sprintf("%s-events.parquet", route)
			}
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			rows, err := monitor.Export(filepath.Join(cf.dataDir, "archive"), route, time.Now().Add(-since), f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(out)
				return err
			}
			fmt.Printf("%d events of route %s since %s written to %s\n", rows, route, time.Now().Add(-since).Format(time.RFC3339), out)
			return nil
		},
	}
	export.Flags().StringVar(&route, "route", "", "route whose events to export")
	export.Flags().DurationVar(&since, "since", time.Hour, "how far back")
	export.Flags().StringVarP(&out, "output", "o", "", "output file (default <route>-events.parquet)")
	export.MarkFlagRequired("route")
	cmd.AddCommand(export)
	return cmd
}
