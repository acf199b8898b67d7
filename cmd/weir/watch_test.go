package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/canary"
)

// Off a terminal, --watch writes a line per change and the final status,
// never clear-screen codes.
func TestWatchRolloutOffTerminal(t *testing.T) {
	step := func(state canary.State, stepIdx, weight int, decision, reason string, reqs int64) []byte {
		b, err := json.Marshal(canary.Status{Route: "fraud", State: state, Step: stepIdx, Weight: weight, Decision: decision, Reason: reason,
			Spec:     canary.Spec{Steps: []int{25, 100}, Variant: "canary", Model: "fraud", Version: "2"},
			Variants: map[string]canary.VariantStats{"canary": {Requests: reqs}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	seq := [][]byte{
		step(canary.Progressing, 0, 25, "start", "", 0),
		step(canary.Progressing, 0, 25, "start", "", 7), // only counts moved: no line
		step(canary.Progressing, 1, 100, "advance", "healthy", 120),
		step(canary.Promoted, 1, 100, "promote", "all steps healthy", 250),
	}
	var i int
	fetch := func() ([]byte, error) { i++; return seq[i-1], nil }
	var out bytes.Buffer
	if err := watchRollout(context.Background(), &out, false, time.Millisecond, fetch); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if strings.Contains(got, "\033") || strings.Contains(got, "\r") {
		t.Errorf("control codes off a terminal: %q", got)
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) < 3 || !strings.Contains(lines[0], "PROGRESSING weight 25% step 1 of 2") ||
		!strings.Contains(lines[1], "weight 100% step 2 of 2; canary 120 req") || !strings.Contains(got, "PROMOTED") {
		t.Errorf("lines:\n%s\nwant one per change, then the final status", got)
	}
	if strings.Count(got, "weight 25%") != 1 {
		t.Errorf("an unchanged rollout printed twice:\n%s", got)
	}
}

// Off a terminal, the backfill's progress is a line at each tenth.
func TestProgressOffTerminal(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, "backfill s")
	for done := 0; done <= 1000; done += 7 {
		p.update(done, 1000)
	}
	p.update(1000, 1000)
	p.done()
	got := out.String()
	if strings.Contains(got, "\r") {
		t.Errorf("carriage returns off a terminal: %q", got)
	}
	if lines := strings.Split(strings.TrimSpace(got), "\n"); len(lines) != 11 || !strings.HasPrefix(lines[10], "backfill s 100% 1000/1000") {
		t.Errorf("progress lines:\n%s\nwant 11, 0%% to 100%%", got)
	}
}
