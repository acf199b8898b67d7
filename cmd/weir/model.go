package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newModelCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Upload, list and remove model versions"}

	var features, reference string
	push := &cobra.Command{
		Use:   "push NAME VERSION FILE.onnx",
		Short: "Upload an ONNX model version (ready on every gateway when this returns)",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, path := args[0], args[1], args[2]
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			var list []string
			if features != "" {
				list = strings.Split(features, ",")
			}
			c := cf.client()
			if err := c.PushModel(cmd.Context(), name, version, f, list); err != nil {
				return fmt.Errorf("push %s@%s: %w", name, version, err)
			}
			fmt.Printf("model %s@%s uploaded and ready\n", name, version)
			if reference != "" {
				rf, err := os.Open(reference)
				if err != nil {
					return err
				}
				defer rf.Close()
				ct := "text/csv"
				if strings.EqualFold(filepath.Ext(reference), ".json") {
					ct = "application/json"
				}
				if err := c.PushReference(cmd.Context(), name, version, rf, ct); err != nil {
					return fmt.Errorf("reference data for %s@%s: %w", name, version, err)
				}
				fmt.Printf("reference data for %s@%s uploaded from %s\n", name, version, reference)
			}
			return nil
		},
	}
	push.Flags().StringVar(&features, "features", "", "comma-separated feature names, in the order of the model's input columns")
	push.Flags().StringVar(&reference, "reference", "", "reference (training) data, CSV with a header row or JSON, for drift monitoring")

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List models and their versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := cf.client().ListModels(cmd.Context())
			if err != nil {
				return err
			}
			if len(list) == 0 {
				fmt.Println("no models yet: weir model push NAME VERSION FILE.onnx")
				return nil
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "MODEL\tVERSION\tSTATE\tFEATURES\tSIZE\tUPLOADED")
			for _, m := range list {
				for _, v := range m.Versions {
					ver := v.Version
					if ver == m.Latest {
						ver += " (latest)"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, ver, v.State, countOrDash(len(v.Features)),
						humanBytes(v.Size), v.Uploaded.Local().Format("2006-01-02 15:04:05"))
				}
			}
			return w.Flush()
		},
	}

	rm := &cobra.Command{
		Use:   "rm NAME VERSION",
		Short: "Remove a model version (refused while a route sends it traffic)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.client().DeleteModel(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Printf("model %s@%s removed\n", args[0], args[1])
			return nil
		},
	}
	cmd.AddCommand(push, ls, rm)
	return cmd
}

func countOrDash(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
