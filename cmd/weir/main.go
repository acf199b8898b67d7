// Command weir is the model-serving gateway and its command-line client.
//
// main only builds the command tree and runs it; each command turns flags
// into options for the package that does the work.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(run()) }

// run executes the command line and returns the exit status.
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, cf := newRootFlags()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "weir:", cf.explainAuth(err))
		return 1
	}
	return 0
}
