package adapter_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/internal/testenv"
)

// BenchmarkListRuns measures GET /v2/runs over an environment of 10 000 runs
// (TEMPEST_BENCH_RUNS), against raw Temporal visibility listing the same page, in one run:
//
//	go test ./adapter -run '^$' -bench ListRuns -benchtime 50x
//
// Setting up the runs takes a minute or two; it happens once per invocation.
func BenchmarkListRuns(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("TEMPEST_BENCH_RUNS")); err == nil && v > 0 {
		n = v
	}
	app := testenv.App(b, nil)
	mustCreate(b, app, "many", adapter.EventTrigger("bench/list", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return in.Event.Data["n"], nil
		})
	mustCreate(b, app, "few", adapter.EventTrigger("bench/list", adapter.Ptr("int(event.data.n) % 100 == 0")),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil })
	testenv.StartWorker(b, app)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	began := time.Now()
	for i := 0; i < n; i += 500 {
		var batch []any
		for j := i; j < min(i+500, n); j++ {
			batch = append(batch, map[string]any{"name": "bench/list", "data": map[string]any{"n": j}})
		}
		send(b, app, batch...)
	}
	total := int64(n + n/100)
	query := fmt.Sprintf("TempestFunctionID IN ('%s-many', '%s-few') AND ExecutionStatus = 'Completed'", app.AppID(), app.AppID())
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		res, err := app.Temporal().CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		if err == nil && res.GetCount() >= total {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d runs completed after 10 minutes (%v)", res.GetCount(), total, err)
		}
	}
	b.Logf("%d runs set up in %s", total, time.Since(began).Round(time.Second))

	page := func(b *testing.B, q url.Values) {
		if _, err := getRuns(b, srv, "/v2/runs", q); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("raw-visibility-page-of-20", func(b *testing.B) {
		for b.Loop() {
			if _, err := app.Temporal().ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
				Query: fmt.Sprintf("TempestFunctionID = '%s-many'", app.AppID()), PageSize: 20,
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-visibility-count", func(b *testing.B) {
		for b.Loop() {
			if _, err := app.Temporal().CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{
				Query: fmt.Sprintf("TempestFunctionID = '%s-many' AND StartTime >= '2026-01-01T00:00:00Z'", app.AppID()),
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("first-page-of-20", func(b *testing.B) {
		for b.Loop() {
			page(b, url.Values{})
		}
	})
	b.Run("function-page-of-100", func(b *testing.B) {
		for b.Loop() {
			page(b, url.Values{"function_id": {app.AppID() + "-many"}, "limit": {"100"}})
		}
	})
	b.Run("page-50-by-cursor", func(b *testing.B) {
		// The 50th page of 20 (runs 981-1000 from the newest), reached through cursors once.
		q := url.Values{}
		for range 49 {
			a, err := getRuns(b, srv, "/v2/runs", q)
			if err != nil {
				b.Fatal(err)
			}
			q.Set("cursor", a.Page.Cursor)
		}
		b.ResetTimer()
		for b.Loop() {
			page(b, q)
		}
	})
	b.Run("status-completed-ASC", func(b *testing.B) {
		for b.Loop() {
			page(b, url.Values{"status": {"COMPLETED"}, "order": {"ASC"}})
		}
	})
	b.Run("if-rare-match", func(b *testing.B) {
		// A CEL filter that 1 run in 100 of "many" passes: the listing reads events until
		// it has a page (or reaches its scan cap).
		for b.Loop() {
			page(b, url.Values{"function_id": {app.AppID() + "-many"}, "if": {"int(event.data.n) % 100 == 7"}, "limit": {"5"}})
		}
	})
}
