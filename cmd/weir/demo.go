package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/examples/fraud"
	"github.com/weirhq/weir/gateway"
	"github.com/weirhq/weir/sdk/client"
)

func init() { extraCommands = append(extraCommands, newDemoCmd) }

// installDemo sets up the fraud-prevention demo on the gateway listening
// at listen, through its public API, streams transactions into it at rate
// per second, and prints how to call it.
func installDemo(ctx context.Context, listen, token, pluginDir string, rate float64) error {
	base := localURL(listen)
	c := client.New(base, token)
	gen, err := setupDemo(ctx, c, pluginDir, 20000, prefixed{"demo: "})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, `
demo ready: route %[2]s scores card transactions (fraud-features plugin -> fraud@1 -> decision plugin),
with a generator streaming %[3]g transactions per second into it.

  dashboard   %[1]s/
  score one   curl -s %[1]s/v1/routes/fraud/predict -d '{"account_id":"acct-00042","amount":640,"merchant":"giftcards","ts":1764039600}'
  model only  curl -s %[1]s/v2/models/fraud/versions/1/infer -d '{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[6.5,8,0.6,1]}]}'
  canary      build/weir canary start fraud --to fraud@2 --steps 25,50,100 --interval 15s --min-requests 10

`, base, fraud.RouteName, rate)
	if rate <= 0 {
		return nil
	}
	return fraud.Stream(ctx, c, gen, rate, 0, nil)
}

// setupDemo installs the demo (feature set, plugins, fraud@1 and @2, route)
// and backfills history transactions ending now, so that accounts have
// their aggregates before the first live transaction: without them
// amount_zscore reads 0 until history builds up, and drift on it is a
// false alert. Live traffic continues the returned generator's clock.
func setupDemo(ctx context.Context, c *client.Client, pluginDir string, history int, say io.Writer) (*fraud.Generator, error) {
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := c.ListModels(ctx); err == nil {
			break
		} else if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintln(say, "training the fraud models on generated history...")
	t, err := fraud.TrainAll()
	if err != nil {
		return nil, err
	}
	if err := fraud.Setup(ctx, c, t, pluginDir, true, say); err != nil {
		return nil, err
	}
	gen := fraud.NewGenerator(uint64(time.Now().UnixNano()), fraud.Accounts, time.Now().UTC().Add(-time.Duration(history)*fraud.SimGap))
	fmt.Fprintf(say, "backfilling %d historical transactions into feature set %s...\n", history, fraud.FeatureSetName)
	if err := fraud.Backfill(ctx, c, gen, history); err != nil {
		return nil, err
	}
	return gen, nil
}

// demoAccess says where the demo gateway is and how to use its token: in
// the dashboard (rollout buttons) and from the CLI or the Python client.
func demoAccess(base, token string, keep bool) string {
	after := "while the demo runs (--keep: after the report too)"
	if keep {
		after = "while the demo runs and after the report, until interrupted"
	}
	return fmt.Sprintf(`demo: gateway at %[1]s, %[3]s
demo:   dashboard   %[1]s/  (reads are open; for its rollout buttons, paste the admin token under "Admin token")
demo:   admin token %[2]s
demo:   CLI, Python export WEIR_SERVER=%[1]s WEIR_ADMIN_TOKEN=%[2]s
`, base, token, after)
}

// localURL is the URL a local client reaches a listen address at.
func localURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// prefixed writes each line to stderr with a prefix.
type prefixed struct{ p string }

func (w prefixed) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			fmt.Fprint(os.Stderr, w.p+line)
		}
	}
	return len(b), nil
}

func newDemoCmd(cf *clientFlags) *cobra.Command {
	var o fraud.StoryOptions
	var ortLib, logFile, listen string
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Play the fraud-prevention story on a fresh in-process gateway and print a report",
		Long: `demo starts a gateway with its own NATS in a temporary directory, installs the
fraud demo, backfills history, streams live transactions, rolls fraud@2 out by
canary, injects drift, rolls a miscalibrated fraud@3 out into the drift (judged
against the stable version, it rolls back on its answers), and reports decision
latency, the live rate against the rate asked, how soon fraud patterns were
blocked against a batch job's interval, time to the drift alert and the rollout
outcomes. It prints the dashboard's address first; --keep leaves the gateway
serving after the report, until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ln, err := net.Listen("tcp", listen) // first: a taken port fails at once
			if err != nil {
				return fmt.Errorf("listen on %s (--listen): %w", listen, err)
			}
			defer ln.Close()
			dir, err := os.MkdirTemp("", "weir-demo-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			ctx := cmd.Context()
			// The gateway's log (failed requests, drift alerts, rollouts)
			// goes to a file that outlives the demo's temporary directory.
			logw := io.Discard
			if logFile != "" {
				f, err := os.Create(logFile)
				if err != nil {
					return fmt.Errorf("--log: %w", err)
				}
				defer f.Close()
				logw = f
				fmt.Fprintf(os.Stderr, "demo: gateway log in %s\n", logFile)
			}
			g, err := gateway.New(ctx, gateway.Options{
				DataDir: dir, NATSListen: "127.0.0.1:0", ORTLib: ortLib,
				Logger: slog.New(slog.NewTextHandler(logw, nil)), CanaryTick: 50 * time.Millisecond,
			})
			if err != nil {
				return err
			}
			defer g.Shutdown(context.Background())
			go g.Serve(ln)
			base := localURL(ln.Addr().String())
			fmt.Fprint(os.Stderr, demoAccess(base, g.AdminToken(), keep))
			o.Out = prefixed{"demo: "}
			rep, err := fraud.RunStory(ctx, client.New(base, g.AdminToken()), o)
			if err != nil {
				return err
			}
			fmt.Print("\n" + rep.String())
			if keep {
				fmt.Fprintf(os.Stderr, "\ndemo: the gateway keeps serving at %s (dashboard %s/) until interrupted (Ctrl-C)\n", base, base)
				<-ctx.Done()
			}
			return nil
		},
	}
	cmd.AddCommand(newDemoFilesCmd())
	f := cmd.Flags()
	f.StringVar(&o.PluginDir, "plugins", "build/plugins", "directory of the demo's Wasm plugins (make plugins)")
	f.Float64Var(&o.Rate, "rate", 100, "live transactions per second")
	f.DurationVar(&o.Interval, "interval", 5*time.Second, "canary step interval")
	f.IntVar(&o.History, "history", 20000, "historical transactions to backfill")
	f.StringVar(&ortLib, "ort-lib", "", "path of libonnxruntime.so")
	f.StringVar(&logFile, "log", "weir-demo.log", "file the demo gateway's log goes to (empty: none)")
	f.StringVar(&listen, "listen", "127.0.0.1:0", "address of the demo gateway's HTTP API and dashboard (port 0: any free port)")
	f.BoolVar(&keep, "keep", false, "leave the gateway serving after the report, until interrupted, to look around")
	f.DurationVar(&o.BatchInterval, "batch-interval", time.Hour, "the batch scoring job the report compares with")
	return cmd
}
