package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/monitor"
)

func init() { extraCommands = append(extraCommands, newEventsCmd) }

func newEventsCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Work with the archived inference events"}
	var route, out, archiveDir string
	var nf natsx.ClientOptions
	var since time.Duration
	export := &cobra.Command{
		Use:   "export --route R --since 1h [-o events.parquet]",
		Short: "Write a route's archived events (Parquet, from the shared JetStream object store, or --archive-dir) into one file for a notebook",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				out = fmt.Sprintf("%s-events.parquet", route)
			}
			store, closeStore, err := archiveStore(cmd.Context(), cf, nf, archiveDir)
			if err != nil {
				return err
			}
			defer closeStore()
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			rows, err := monitor.ExportFrom(cmd.Context(), store, route, time.Now().Add(-since), f)
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
	fl := export.Flags()
	fl.StringVar(&route, "route", "", "route whose events to export")
	fl.DurationVar(&since, "since", time.Hour, "how far back")
	fl.StringVarP(&out, "output", "o", "", "output file (default <route>-events.parquet)")
	fl.StringVar(&archiveDir, "archive-dir", "", "read a local archive (the gateway's --archive-dir) instead of the object store")
	fl.StringVar(&nf.URL, "nats-url", "", "the gateways' NATS (default: $WEIR_NATS_URL, then <data-dir>/nats-url, then nats://127.0.0.1:4222)")
	fl.StringVar(&nf.CredsFile, "nats-creds", "", "NATS credentials file")
	fl.StringVar(&nf.NKeyFile, "nats-nkey", "", "NATS nkey seed file")
	fl.StringVar(&nf.TLSCA, "nats-tls-ca", "", "CA of the NATS servers' certificates")
	fl.StringVar(&nf.TLSCert, "nats-tls-cert", "", "client certificate for NATS mutual TLS")
	fl.StringVar(&nf.TLSKey, "nats-tls-key", "", "key of --nats-tls-cert")
	export.MarkFlagRequired("route")
	cmd.AddCommand(export)
	return cmd
}

// archiveStore opens the archive export reads: a local directory, or the
// object store on the gateways' NATS.
func archiveStore(ctx context.Context, cf *clientFlags, nf natsx.ClientOptions, dir string) (monitor.ArchiveStore, func(), error) {
	if dir != "" {
		return monitor.DirArchive(dir), func() {}, nil
	}
	nf.URL, nf.Name = cf.natsURL(nf.URL), "weir-events-export"
	nc, err := natsx.Dial(nf)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	obj, err := js.ObjectStore(ctx, monitor.ArchiveBucket)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("open the event archive (object store %s): %w", monitor.ArchiveBucket, err)
	}
	return monitor.ObjectArchive(obj), nc.Close, nil
}
