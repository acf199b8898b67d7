package features

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/weirhq/weir/internal/natsx/natstest"
	"github.com/weirhq/weir/internal/weirerr"
)

func TestBackfillCSV(t *testing.T) {
	srv := natstest.Start(t)
	s, _ := openStore(t, srv, true)
	ctx := context.Background()
	if _, err := s.DefineSet(ctx, "fraud", []byte(fraudSet)); err != nil {
		t.Fatal(err)
	}
	// Out of order on purpose: Backfill sorts by ts. The row at 12:00 would be
	// late (outside the hour) if it were applied after the one at 13:10.
	csv := "account_id,ts,amount,merchant\n" +
		"c1,2024-05-01T13:10:00Z,50,m1\n" +
		"c1,2024-05-01T12:00:00Z,10,m1\n" +
		"c1,2024-05-01T12:30:00Z,30,m2\n" +
		",2024-05-01T12:31:00Z,1,m9\n" + // no key: rejected
		"c2,1714564800,7,m3\n"
	var calls []string
	n, err := s.Backfill(ctx, "fraud", strings.NewReader(csv), "csv", func(done, total int) {
		calls = append(calls, fmt.Sprintf("%d/%d", done, total))
	})
	if err != nil || n != 4 {
		t.Fatalf("backfill n=%d err=%v, want 4 rows accepted", n, err)
	}
	if strings.Join(calls, " ") != "0/5 5/5" {
		t.Errorf("progress calls %v", calls)
	}
	waitApplied(t, s, "fraud", 5*time.Second, 4, "backfilled rows applied")
	if got := num(t, s, "c1", "tx_count_1h"); got != 2 {
		t.Errorf("c1 tx_count_1h = %v, want 2", got)
	}
	if got := num(t, s, "c1", "amount_mean_24h"); got != 30 {
		t.Errorf("c1 amount_mean_24h = %v, want 30", got)
	}
	if got := num(t, s, "c2", "tx_count_1h"); got != 1 {
		t.Errorf("c2 tx_count_1h = %v, want 1", got)
	}
	if s.Stats("fraud").Rejected[ReasonMissingKey] != 1 {
		t.Errorf("rejections %+v", s.Stats("fraud").Rejected)
	}
	if _, err := s.Backfill(ctx, "fraud", strings.NewReader(csv), "xlsx", nil); weirerr.KindOf(err) != weirerr.Invalid {
		t.Errorf("unknown format: %v", err)
	}
	if _, err := s.Backfill(ctx, "fraud", strings.NewReader("a,b\n1\n"), "csv", nil); weirerr.KindOf(err) != weirerr.Invalid {
		t.Errorf("ragged CSV: %v", err)
	}
}

type txRow struct {
	AccountID string  `parquet:"account_id"`
	TS        int64   `parquet:"ts"` // unix milliseconds
	Amount    float64 `parquet:"amount"`
	Merchant  string  `parquet:"merchant"`
}

func TestBackfillParquet(t *testing.T) {
	srv := natstest.Start(t)
	s, _ := openStore(t, srv, true)
	ctx := context.Background()
	if _, err := s.DefineSet(ctx, "fraud", []byte(fraudSet)); err != nil {
		t.Fatal(err)
	}
	rows := []txRow{
		{"p1", t0.Add(70 * time.Minute).UnixMilli(), 50, "m1"},
		{"p1", t0.UnixMilli(), 10, "m1"},
		{"p1", t0.Add(30 * time.Minute).UnixMilli(), 30, "m2"},
	}
	var buf bytes.Buffer
	if err := parquet.Write(&buf, rows); err != nil {
		t.Fatal(err)
	}
	n, err := s.Backfill(ctx, "fraud", &buf, "parquet", nil)
	if err != nil || n != 3 {
		t.Fatalf("backfill n=%d err=%v", n, err)
	}
	waitApplied(t, s, "fraud", 5*time.Second, 3, "parquet rows applied")
	if got := num(t, s, "p1", "tx_count_1h"); got != 2 {
		t.Errorf("tx_count_1h = %v, want 2", got)
	}
	if got := num(t, s, "p1", "merchants_1d"); got != 2 {
		t.Errorf("merchants_1d = %v, want 2", got)
	}
	if _, err := s.Backfill(ctx, "fraud", strings.NewReader("not parquet"), "parquet", nil); weirerr.KindOf(err) != weirerr.Invalid {
		t.Errorf("bad parquet: %v", err)
	}
}
