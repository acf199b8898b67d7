package monitor

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/testpoll"
)

// TestArchiveIntoObjectStore: two archivers (two gateways) share the
// durable and the object store; the archive holds every event once, and
// ExportFrom reads it back from the store.
func TestArchiveIntoObjectStore(t *testing.T) {
	s := natstest.Start(t)
	_, js := s.Connect(t)
	ctx := context.Background()
	store, err := OpenObjectArchive(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		newTestArchiver(t, ArchiverOptions{JetStream: js, Store: store, MaxRows: 100, MaxAge: 100 * time.Millisecond})
	}
	createEventsStream(t, js)
	const n = 500
	for i := range n {
		publishRaw(t, js, testEvent("r1", i))
	}
	testpoll.For(t, 20*time.Second, fmt.Sprintf("%d distinct events exported from the object store", n), func() error {
		var buf bytes.Buffer
		rows, err := ExportFrom(ctx, store, "r1", time.Now().Add(-time.Hour), &buf)
		if err != nil {
			return err
		}
		if rows < n {
			return fmt.Errorf("%d of %d rows exported", rows, n)
		}
		back, err := readArchiveFile(buf.Bytes())
		if err != nil {
			return err
		}
		if len(back) != n || distinctIDs(back) != n {
			return fmt.Errorf("export read back as %d rows, %d distinct", len(back), distinctIDs(back))
		}
		return nil
	})
	keys, err := store.List(ctx, "route=r1/")
	if err != nil || len(keys) == 0 {
		t.Fatalf("object store keys %v, err %v", keys, err)
	}
}
