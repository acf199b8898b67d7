package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/weirhq/weir/examples/fraud"
	"github.com/weirhq/weir/sdk/client"
)

// installDemo sets up the fraud-prevention demo on the gateway listening
// at listen, through its public API, and prints how to call it.
func installDemo(ctx context.Context, listen, token string) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	base := "http://" + net.JoinHostPort(host, port)
	c := client.New(base, token)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := c.ListModels(ctx); err == nil {
			break
		} else if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "demo: training the fraud models on generated history...")
	t, err := fraud.TrainAll()
	if err != nil {
		return err
	}
	if err := fraud.SetupModels(ctx, c, t, false, prefixed{"demo: "}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, `
demo ready. Score a transaction's features with the Open Inference Protocol:

  curl -s %s/v2/models/fraud/infer -d '{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[4.1,2.5,0.84,1]}]}'

`, base)
	return nil
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
