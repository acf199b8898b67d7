package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newFeaturesCmd) }

func newFeaturesCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "features", Short: "Online features: define feature sets, read entities, backfill history"}

	var file string
	define := &cobra.Command{
		Use:   "define SET -f featureset.json",
		Short: "Create or replace a feature set (key field, windowed aggregations)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := readData("@" + file)
			if err != nil {
				return err
			}
			var out map[string]any
			if err := cf.client().Send(cmd.Context(), "PUT", "/v1/featuresets/"+url.PathEscape(args[0]), rawJSON(body), &out); err != nil {
				return err
			}
			fmt.Printf("feature set %s defined\n", args[0])
			return nil
		},
	}
	define.Flags().StringVarP(&file, "file", "f", "", "feature set JSON (- for stdin)")
	define.MarkFlagRequired("file")

	get := &cobra.Command{
		Use:   "get ENTITY",
		Short: "Show an entity's online features",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Features map[string]any `json:"features"`
			}
			if err := cf.client().Get(cmd.Context(), "/v1/features/"+url.PathEscape(args[0]), &out); err != nil {
				return err
			}
			for k, v := range out.Features {
				fmt.Printf("  %-24s %v\n", k, v)
			}
			return nil
		},
	}

	backfill := &cobra.Command{
		Use:   "backfill SET FILE.csv|FILE.parquet",
		Short: "Replay historical events through a feature set's aggregations, so features are warm before live traffic",
		Long: `backfill uploads the file to the gateway at --server (admin token), which
sorts its rows by the set's timestamp field and replays them through the same
path as live events. The progress bar shows the upload.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, path := args[0], args[1]
			format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
			if format != "csv" && format != "parquet" {
				return fmt.Errorf("%s: expected a .csv or .parquet file", path)
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			info, err := f.Stat()
			if err != nil {
				return err
			}
			p := newProgress(os.Stderr, "backfill "+set)
			n, err := cf.client().Backfill(cmd.Context(), set, &countingReader{r: f, total: int(info.Size()), update: p.update}, format)
			p.done()
			if err != nil {
				return err
			}
			fmt.Printf("%d events of %s replayed into feature set %s\n", n, path, set)
			return nil
		},
	}
	cmd.AddCommand(define, get, backfill)
	return cmd
}

// rawJSON sends bytes that are already JSON through client.Send.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

// progress shows an upload's progress: a bar redrawn in place on a
// terminal, else (a log, a pipe) a line at each tenth, with no control codes.
type progress struct {
	w     io.Writer
	tty   bool
	label string
	start time.Time
	last  time.Time
	shown int // the last tenth written, off a terminal
}

func newProgress(w io.Writer, label string) *progress {
	return &progress{w: w, tty: isTerminal(w), label: label, start: time.Now(), shown: -1}
}

func (p *progress) update(done, total int) {
	pct := 0
	if total > 0 {
		pct = done * 100 / total
	}
	rate := float64(done) / time.Since(p.start).Seconds()
	if !p.tty {
		if pct/10 > p.shown {
			p.shown = pct / 10
			fmt.Fprintf(p.w, "%s %3d%% %d/%d (%.0f/s)\n", p.label, pct, done, total, rate)
		}
		return
	}
	if time.Since(p.last) < 100*time.Millisecond && done != total {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "\r%s %s %3d%% %d/%d (%.0f/s)", p.label, bar(pct, 30), pct, done, total, rate)
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

// countingReader reports bytes read of total to update (an upload's
// progress).
type countingReader struct {
	r      io.Reader
	done   int
	total  int
	update func(done, total int)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.done += n
	c.update(c.done, c.total)
	return n, err
}
