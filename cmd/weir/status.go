package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newStatusCmd) }

// statusAnswer is GET /v1/status.
type statusAnswer struct {
	NATS struct {
		State       string `json:"state"`
		Server      string `json:"server"`
		Cluster     string `json:"cluster"`
		URL         string `json:"url"`
		Replicas    int    `json:"replicas"`
		AlertLeader bool   `json:"alert_leader"`
	} `json:"nats"`
	Assets []struct {
		Kind     string `json:"kind"`
		Name     string `json:"name"`
		Replicas int    `json:"replicas"`
		Leader   string `json:"leader"`
		Peers    []struct {
			Name    string `json:"name"`
			Current bool   `json:"current"`
			Offline bool   `json:"offline"`
		} `json:"peers"`
		Messages uint64 `json:"messages"`
		Bytes    uint64 `json:"bytes"`
	} `json:"assets"`
}

func newStatusCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the gateway's NATS connection and every JetStream asset with its replicas and leader",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var s statusAnswer
			if err := cf.client().Get(cmd.Context(), "/v1/status", &s); err != nil {
				return err
			}
			n := s.NATS
			fmt.Printf("NATS %s: server %s, cluster %s, %s; --nats-replicas %d; drift alert leader: %v\n\n",
				n.State, orDash(n.Server), orDash(n.Cluster), orDash(n.URL), n.Replicas, n.AlertLeader)
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "KIND\tNAME\tREPLICAS\tLEADER\tPEERS\tMESSAGES\tBYTES")
			for _, a := range s.Assets {
				var peers []string
				for _, p := range a.Peers {
					st := "current"
					if p.Offline {
						st = "offline"
					} else if !p.Current {
						st = "behind"
					}
					peers = append(peers, p.Name+"("+st+")")
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%d\t%d\n", a.Kind, a.Name, a.Replicas, orDash(a.Leader),
					orDash(strings.Join(peers, ",")), a.Messages, a.Bytes)
			}
			return w.Flush()
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
