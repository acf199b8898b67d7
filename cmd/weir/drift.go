package main

import (
	"fmt"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newDriftCmd) }

// driftResult is one feature's drift as GET /v1/drift/{model} returns it.
type driftResult struct {
	Version   string  `json:"version"`
	Feature   string  `json:"feature"`
	Kind      string  `json:"kind"`
	Metric    string  `json:"metric"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Drifted   bool    `json:"drifted"`
	Reference string  `json:"reference"`
	State     string  `json:"state"`
	Progress  *struct {
		Have int `json:"have"`
		Need int `json:"need"`
	} `json:"progress"`
	Window struct {
		From  time.Time `json:"from"`
		To    time.Time `json:"to"`
		Count int       `json:"count"`
	} `json:"window"`
}

func newDriftCmd(cf *clientFlags) *cobra.Command {
	var version string
	cmd := &cobra.Command{
		Use:   "drift MODEL",
		Short: "Show each feature's drift from the model's reference data",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/drift/" + url.PathEscape(args[0])
			if version != "" {
				path += "/versions/" + url.PathEscape(version)
			}
			var out struct {
				Model   string        `json:"model"`
				Results []driftResult `json:"results"`
			}
			if err := cf.client().Get(cmd.Context(), path, &out); err != nil {
				return err
			}
			if len(out.Results) == 0 {
				fmt.Printf("no live traffic for %s yet: drift appears once requests arrive\n", args[0])
				return nil
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VERSION\tFEATURE\tMETRIC\tVALUE\tTHRESHOLD\tSTATE\tWINDOW")
			for _, r := range out.Results {
				value := fmt.Sprintf("%.3f", r.Value)
				if r.State != "ok" && r.State != "drifted" {
					value = "-" // not judged: 0 would read as "no drift"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%.3f\t%s\t%d events, %s\n", r.Version, r.Feature, r.Metric, value, r.Threshold,
					r.stateText(), r.Window.Count, r.Window.To.Sub(r.Window.From).Round(time.Second))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&version, "version", "", "one version (default: every version with traffic)")
	return cmd
}

// stateText is the STATE column: ok, DRIFTED, "warming up (40 of 100)" or
// "collecting reference (12 of 1000)". A gateway that sends no state (older
// than the field) is judged by drifted alone.
func (r driftResult) stateText() string {
	switch {
	case r.Drifted || r.State == "drifted":
		return "DRIFTED"
	case r.State == "warming_up" && r.Progress != nil:
		return fmt.Sprintf("warming up (%d of %d)", r.Progress.Have, r.Progress.Need)
	case r.State == "collecting_reference" && r.Progress != nil:
		return fmt.Sprintf("collecting reference (%d of %d)", r.Progress.Have, r.Progress.Need)
	case r.State == "warming_up":
		return "warming up"
	case r.State == "collecting_reference":
		return "collecting reference"
	}
	return "ok"
}
