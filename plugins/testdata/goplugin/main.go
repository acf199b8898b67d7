// Command goplugin is a test plugin built with the Go SDK. By default it
// returns its input decoded and encoded again (the SDK's floor cost); the
// "do" field asks for a behaviour under test.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/metrics"
	"time"

	"github.com/weirhq/weir/sdk/plugin"
)

func init() { plugin.Handle(handle) }

func main() {}

var hoard [][]byte

func handle(ev plugin.Event) (plugin.Event, error) {
	switch ev["do"] {
	case "panic":
		panic("the plugin panicked on purpose")
	case "convert":
		ev["n"] = ev["missing"].(string) // panics: interface conversion
	case "print":
		fmt.Println("printed by a Go plugin")
		fmt.Fprintln(os.Stderr, "complained by a Go plugin")
	case "log":
		plugin.Log(plugin.LevelWarn, "logged by a Go plugin")
	case "sleep":
		// Sleeps go through WASI poll_oneoff.
		start := plugin.Now()
		time.Sleep(2 * time.Millisecond)
		ev["slept_ns"] = float64(plugin.Now() - start)
	case "hoard":
		for {
			hoard = append(hoard, make([]byte, 1<<20))
		}
	case "fail":
		return nil, errors.New("asked to fail")
	case "garbage":
		// Allocate like a busy plugin and count the collections that
		// completed while this handler ran.
		before := gcCycles()
		for range 32 {
			sink = make([]byte, 1024)
		}
		inCall += gcCycles() - before
	case "collections":
		ev["in_calls"] = float64(inCall)
		ev["total"] = float64(gcCycles())
	}
	return ev, nil
}

var (
	sink   []byte
	inCall uint64
	cycles = []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
)

func gcCycles() uint64 {
	metrics.Read(cycles)
	return cycles[0].Value.Uint64()
}
