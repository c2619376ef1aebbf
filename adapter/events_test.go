package adapter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

// GET /v1/events lists the log newest first, pages by cursor, filters by name, and says
// for each event which runs it started or why it started none.
func TestListEvents(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	noop := func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil }
	mustCreate(t, app, "runs", adapter.EventTrigger("test/run", nil), noop)
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "limited", RateLimit: &adapter.RateLimit{Limit: 1, Period: time.Hour}},
		adapter.EventTrigger("test/limited", nil), noop); err != nil {
		t.Fatal(err)
	}
	// No worker: the runs stay started, and emit no inngest/function.finished events of
	// their own into the log.
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	var ids []string
	for _, name := range []string{"test/run", "test/none", "test/limited", "test/limited"} {
		ids = append(ids, send(t, app, map[string]any{"name": name})...)
	}
	list := func(query url.Values) (int, []api.Event) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/v1/events?" + query.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Data []api.Event }
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out.Data
	}
	idsOf := func(evs []api.Event) string {
		var out []string
		for _, e := range evs {
			out = append(out, e.InternalID)
		}
		return fmt.Sprint(out)
	}

	code, page1 := list(url.Values{"limit": {"2"}})
	if code != 200 || idsOf(page1) != fmt.Sprint([]string{ids[3], ids[2]}) {
		t.Fatalf("first page: %d %s, want the last two sent %v", code, idsOf(page1), ids)
	}
	_, page2 := list(url.Values{"limit": {"2"}, "cursor": {page1[1].InternalID}})
	if idsOf(page2) != fmt.Sprint([]string{ids[1], ids[0]}) {
		t.Fatalf("second page: %s, want %v", idsOf(page2), ids[:2])
	}
	if _, page3 := list(url.Values{"limit": {"2"}, "cursor": {page2[1].InternalID}}); len(page3) != 0 {
		t.Fatalf("third page: %s", idsOf(page3))
	}
	_, limited := list(url.Values{"name": {"test/limited"}})
	if idsOf(limited) != fmt.Sprint([]string{ids[3], ids[2]}) {
		t.Fatalf("name filter: %s", idsOf(limited))
	}

	byID := map[string]api.Event{}
	for _, e := range append(page1, page2...) {
		byID[e.InternalID] = e
	}
	for i, want := range []struct {
		runs   int
		reason string
	}{{1, ""}, {0, adapter.ReasonNoFunction}, {1, ""}, {0, adapter.ReasonRateLimited}} {
		e := byID[ids[i]]
		if len(e.Runs) != want.runs || e.Reason != want.reason || e.DispatchedAt == nil {
			t.Errorf("event %d (%s): runs %v, reason %q, dispatched %v; want %d runs, reason %q", i, e.Name, e.Runs, e.Reason, e.DispatchedAt, want.runs, want.reason)
		}
	}

	if _, none := list(url.Values{"received_before": {time.Now().Add(-time.Hour).Format(time.RFC3339)}}); len(none) != 0 {
		t.Errorf("received_before an hour ago: %s", idsOf(none))
	}
	for _, bad := range []url.Values{{"limit": {"x"}}, {"limit": {"0"}}, {"cursor": {"nope"}}, {"cursor": {"01HE8AM9DPK9N37V1RKY1DNQF5"}}, {"received_after": {"yesterday"}}} {
		if code, _ := list(bad); code != 400 {
			t.Errorf("%v: HTTP %d, want 400", bad, code)
		}
	}
}

// Events queued behind a slow dispatch keep their leases: the claim loop, which takes
// events whose lease ran out, never dispatches them a second time.
func TestQueuedEventsKeepTheirLeases(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, func(o *adapter.Options) {
		adapter.ShortLeasesForTest(o, time.Second, 50*time.Millisecond)
	})
	f, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "slow"}, adapter.EventTrigger("test/slow-start", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	// Each start takes 600 ms: the first request's dispatch holds up the next 19, whose
	// starts take two rounds of 16, so they are done 1.8 s after they were leased for 1 s.
	adapter.SlowStartsForTest(f.FullyQualifiedID(), 600*time.Millisecond)
	ctx := context.Background()
	var ids []string
	for range 20 {
		got, err := app.Ingest(ctx, "", []json.RawMessage{json.RawMessage(`{"name":"test/slow-start"}`)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	if err := app.WaitDispatched(ctx, ids...); err != nil {
		t.Fatal(err)
	}
	if n := app.DispatchedForTest(); n != int64(len(ids)) {
		t.Fatalf("%d dispatches of %d events: queued events lost their leases to the claim loop", n, len(ids))
	}
}

// A function with no rate limit and no singleton has nothing to decide in Redis before its
// start: its runs leave no decision records there (one per run for 30 minutes, before).
func TestPlainFunctionKeepsNoDecisionRecords(t *testing.T) {
	t.Parallel()
	_, rdb := testenv.Services(t)
	app := testenv.App(t, nil)
	f, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "plain"}, adapter.EventTrigger("test/plain", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ids, err := app.Send(ctx, map[string]any{"name": "test/plain"}, map[string]any{"name": "test/plain"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if runs, err := app.EventRuns(ctx, id); err != nil || len(runs) != 1 {
			t.Fatalf("runs of %s: %v %v", id, runs, err)
		}
	}
	keys, err := rdb.Keys(ctx, "tempest:{f:"+f.FullyQualifiedID()+"}:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		t.Fatalf("Redis keys of a plain function's runs: %v", keys)
	}
}
