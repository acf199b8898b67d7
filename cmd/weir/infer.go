package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func newInferCmd(cf *clientFlags) *cobra.Command {
	var data, version string
	var raw bool
	cmd := &cobra.Command{
		Use:   "infer ROUTE|MODEL --data JSON|@file",
		Short: "Score one request: an OIP request ({\"inputs\":[...]}) or a raw event for a route's plugins",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := readData(data)
			if err != nil {
				return err
			}
			c := cf.client()
			var probe struct {
				Inputs json.RawMessage `json:"inputs"`
			}
			if err := json.Unmarshal(body, &probe); err != nil {
				return fmt.Errorf("--data is not JSON: %w", err)
			}
			var out json.RawMessage
			if probe.Inputs != nil {
				out, err = c.Infer(cmd.Context(), args[0], version, body)
			} else {
				out, err = c.Predict(cmd.Context(), args[0], body)
			}
			if err != nil {
				return err
			}
			if raw {
				fmt.Println(string(out))
				return nil
			}
			return printAnswer(out)
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "request JSON, or @file to read it from a file (@- for stdin)")
	cmd.Flags().StringVar(&version, "version", "", "pin a model version (OIP requests)")
	cmd.Flags().BoolVar(&raw, "json", false, "print the raw JSON answer")
	cmd.MarkFlagRequired("data")
	return cmd
}

func readData(arg string) ([]byte, error) {
	switch {
	case arg == "@-":
		var b bytes.Buffer
		_, err := b.ReadFrom(os.Stdin)
		return b.Bytes(), err
	case strings.HasPrefix(arg, "@"):
		return os.ReadFile(arg[1:])
	}
	return []byte(arg), nil
}

// printAnswer shows an OIP response or a predict answer for a person.
func printAnswer(b []byte) error {
	var a struct {
		ModelName    string `json:"model_name"`
		ModelVersion string `json:"model_version"`
		Route        string `json:"route"`
		Variant      string `json:"variant"`
		Model        string `json:"model"`
		Version      string `json:"version"`
		Outputs      json.RawMessage
		Result       json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		fmt.Println(string(b))
		return nil
	}
	if a.ModelName != "" {
		fmt.Printf("model %s@%s\n", a.ModelName, a.ModelVersion)
		var outs []struct {
			Name     string          `json:"name"`
			Shape    []int64         `json:"shape"`
			Datatype string          `json:"datatype"`
			Data     json.RawMessage `json:"data"`
		}
		json.Unmarshal(a.Outputs, &outs)
		for _, o := range outs {
			fmt.Printf("  %s %s%v = %s\n", o.Name, o.Datatype, o.Shape, o.Data)
		}
		return nil
	}
	fmt.Printf("route %s -> variant %s (model %s@%s)\n", a.Route, a.Variant, a.Model, a.Version)
	if len(a.Outputs) > 0 {
		fmt.Printf("  outputs: %s\n", a.Outputs)
	}
	if len(a.Result) > 0 && string(a.Result) != "null" {
		fmt.Printf("  result:  %s\n", a.Result)
	}
	return nil
}
