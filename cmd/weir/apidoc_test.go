package main

import (
	"testing"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/internal/apidoc"
)

// TestAPIDocListsEveryCommand fails when a command of the binary is missing
// from docs/api.md's CLI section, written as "weir model push".
func TestAPIDocListsEveryCommand(t *testing.T) {
	doc := apidoc.Load(t)
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Parent().Name() == "completion" {
				continue
			}
			n++
			if !doc.Has("`" + sub.CommandPath()) {
				t.Errorf("docs/api.md does not name the command %q", sub.CommandPath())
			}
			walk(sub)
		}
	}
	walk(newRoot())
	if n < 20 {
		t.Fatalf("walked %d commands; expected the whole CLI", n)
	}
}
