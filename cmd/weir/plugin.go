package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/sdk/client"
)

func init() { extraCommands = append(extraCommands, newPluginCmd) }

func newPluginCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "plugin", Short: "Upload, list and remove WebAssembly plugins"}
	var limits client.PluginLimits
	push := &cobra.Command{
		Use:   "push NAME VERSION FILE.wasm",
		Short: "Upload a Wasm plugin version (validated: exports, imports, ABI version)",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[2])
			if err != nil {
				return err
			}
			defer f.Close()
			pushed, err := cf.client().PushPluginResult(cmd.Context(), args[0], args[1], f, limits)
			if err != nil {
				return fmt.Errorf("push plugin %s@%s: %w", args[0], args[1], err)
			}
			if !pushed.Created {
				fmt.Println(pushed.Message)
			} else {
				fmt.Printf("plugin %s@%s uploaded and loaded\n", args[0], args[1])
			}
			return nil
		},
	}
	push.Flags().IntVar(&limits.MemoryMB, "memory-mb", 0, "most memory one instance may use (default 16; a re-push of the same bytes keeps the stored value)")
	push.Flags().DurationVar(&limits.Timeout, "timeout", 0, "deadline of one call (default 20ms; a re-push of the same bytes keeps the stored value)")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List plugins and their versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Plugins []struct {
					Name    string `json:"name"`
					Latest  string `json:"latest"`
					Details []struct {
						Version, SHA256, Timeout, Error string
						Size                            int64
						MemoryPages                     uint32 `json:"memory_pages"`
					} `json:"details"`
				} `json:"plugins"`
			}
			if err := cf.client().Get(cmd.Context(), "/v1/plugins", &out); err != nil {
				return err
			}
			if len(out.Plugins) == 0 {
				fmt.Println("no plugins yet: weir plugin push NAME VERSION FILE.wasm")
				return nil
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "PLUGIN\tVERSION\tSIZE\tSHA256\tLIMITS\tSTATE")
			for _, p := range out.Plugins {
				for _, d := range p.Details {
					ver, state := d.Version, "loaded"
					if ver == p.Latest {
						ver += " (latest)"
					}
					if d.Error != "" {
						state = "failed: " + d.Error
					}
					limits := "timeout " + orDefault(d.Timeout, "20ms") + ", memory " + orDefault(memoryMiB(d.MemoryPages), "16 MiB")
					fmt.Fprintf(w, "%s\t%s\t%s\t%.12s\t%s\t%s\n", p.Name, ver, humanBytes(d.Size), d.SHA256, limits, state)
				}
			}
			return w.Flush()
		},
	}
	rm := &cobra.Command{
		Use:   "rm NAME VERSION",
		Short: "Remove a plugin version (refused while a route uses it)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cf.client().DeletePlugin(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Printf("plugin %s@%s removed\n", args[0], args[1])
			return nil
		},
	}
	cmd.AddCommand(push, ls, rm, newPluginRunCmd(cf), newPluginInitCmd())
	return cmd
}

func orDefault(s, def string) string {
	if s == "" {
		return def + " (default)"
	}
	return s
}

func memoryMiB(pages uint32) string {
	if pages == 0 {
		return ""
	}
	return fmt.Sprintf("%d MiB", pages/16)
}
