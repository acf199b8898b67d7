package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/sdk/client"
)

func newModelCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Upload, list and remove model versions"}

	var features, reference string
	var batching batchingFlags
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
			o := client.PushOptions{Features: list}
			if batching.given(cmd) {
				o.Batching = batching.setting()
			}
			pushed, err := c.PushModelResult(cmd.Context(), name, version, f, o)
			if err != nil {
				return fmt.Errorf("push %s@%s: %w", name, version, err)
			}
			if !pushed.Created {
				fmt.Printf("model %s@%s is already there with these bytes: nothing changed\n", name, version)
			} else {
				fmt.Printf("model %s@%s uploaded and ready\n", name, version)
			}
			if pushed.Created && o.Batching != nil && o.Batching.MaxBatchSize > 0 {
				fmt.Printf("dynamic batching on: %s\n", batching.describe())
			}
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
	batching.add(push)

	var set batchingFlags
	batch := &cobra.Command{
		Use:   "batching NAME VERSION --max-batch-size N [--max-queue-delay 500us] [--preferred-batch-sizes 8,16]",
		Short: "Set a model version's dynamic batching on every gateway (--max-batch-size 0 turns it off)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("max-batch-size") {
				return fmt.Errorf("give --max-batch-size (0 turns batching off)")
			}
			if err := cf.client().SetBatching(cmd.Context(), args[0], args[1], *set.setting()); err != nil {
				return fmt.Errorf("batching for %s@%s: %w", args[0], args[1], err)
			}
			if set.size == 0 {
				fmt.Printf("dynamic batching off for %s@%s\n", args[0], args[1])
			} else {
				fmt.Printf("dynamic batching for %s@%s: %s\n", args[0], args[1], set.describe())
			}
			return nil
		},
	}
	set.add(batch)

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
			fmt.Fprintln(w, "MODEL\tVERSION\tSTATE\tFEATURES\tBATCHING\tSIZE\tUPLOADED")
			for _, m := range list {
				for _, v := range m.Versions {
					ver := v.Version
					if ver == m.Latest {
						ver += " (latest)"
					}
					batch := "-"
					if b := v.Batching; b != nil {
						batch = fmt.Sprintf("%d rows, %s", b.MaxBatchSize, b.MaxQueueDelay)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, ver, v.State, countOrDash(len(v.Features)),
						batch, humanBytes(v.Size), v.Uploaded.Local().Format("2006-01-02 15:04:05"))
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
	cmd.AddCommand(push, ls, rm, batch)
	return cmd
}

// batchingFlags are the dynamic batching flags of model push and model batching.
type batchingFlags struct {
	size      int
	delay     string
	preferred []int
}

func (b *batchingFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&b.size, "max-batch-size", 0, "dynamic batching: most rows one batched run holds (0: off)")
	cmd.Flags().StringVar(&b.delay, "max-queue-delay", "", "dynamic batching: how long a request waits for others to join its batch, e.g. 500us")
	cmd.Flags().IntSliceVar(&b.preferred, "preferred-batch-sizes", nil, "dynamic batching: batch sizes to aim for, e.g. 8,16")
}

func (b *batchingFlags) given(cmd *cobra.Command) bool {
	f := cmd.Flags()
	return f.Changed("max-batch-size") || f.Changed("max-queue-delay") || f.Changed("preferred-batch-sizes")
}

func (b *batchingFlags) setting() *client.Batching {
	return &client.Batching{MaxBatchSize: b.size, MaxQueueDelay: b.delay, PreferredBatchSizes: b.preferred}
}

func (b *batchingFlags) describe() string {
	s := fmt.Sprintf("up to %d rows a batch", b.size)
	if b.delay != "" {
		s += ", waiting up to " + b.delay
	}
	if len(b.preferred) > 0 {
		s += fmt.Sprintf(", preferred sizes %v", b.preferred)
	}
	return s
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
