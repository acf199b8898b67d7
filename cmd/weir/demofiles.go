package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/examples/fraud"
)

// demoRequest is the OIP request README.md scores with `weir infer`: one
// transaction's four features in fraud@1's order (amount_log,
// amount_zscore, merchant_risk, is_night).
const demoRequest = `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[4.1,2.5,0.84,1]}]}` + "\n"

// writeDemoFiles writes the example inputs README.md's commands use into
// dir: a model trained on generated history (model.onnx, the same four
// features as fraud@1), its reference data (train.csv, the training frame's
// feature columns with a header), an OIP request (request.json) and
// historical transactions for a feature backfill (history.csv, ending now).
func writeDemoFiles(dir string, historyRows int) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	train := fraud.History(3, 20000, fraud.FeaturesV1)
	model, err := fraud.Train(train, 300).ONNX(fraud.ModelName)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"model.onnx":   model,
		"train.csv":    fraud.ReferenceCSV(train, 5000),
		"request.json": []byte(demoRequest),
		"history.csv":  historyCSV(historyRows),
	}
	var written []string
	for _, name := range []string{"model.onnx", "train.csv", "request.json", "history.csv"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return written, err
		}
		written = append(written, p)
	}
	return written, nil
}

// historyCSV is n generated transactions of the demo's accounts, one a
// simulated minute apart and ending now, with the feature set's fields.
func historyCSV(n int) []byte {
	gen := fraud.NewGenerator(uint64(time.Now().UnixNano()), fraud.Accounts, time.Now().UTC().Add(-time.Duration(n)*fraud.SimGap))
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"tx_id", "account_id", "amount", "merchant", "country", "ts"})
	for range n {
		t := gen.Next(fraud.SimGap)
		w.Write([]string{t.ID, t.Account, strconv.FormatFloat(t.Amount, 'f', 2, 64), t.Merchant, t.Country, strconv.FormatInt(t.TS, 10)})
	}
	w.Flush()
	return b.Bytes()
}

func newDemoFilesCmd() *cobra.Command {
	var rows int
	cmd := &cobra.Command{
		Use:   "files DIR",
		Short: "Write the example inputs README.md uses: model.onnx, train.csv, request.json, history.csv",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			written, err := writeDemoFiles(args[0], rows)
			for _, p := range written {
				fmt.Println("wrote", p)
			}
			return err
		},
	}
	cmd.Flags().IntVar(&rows, "history", 2000, "transactions in history.csv")
	return cmd
}
