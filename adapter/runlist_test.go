package adapter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

type runsAnswer struct {
	Data []api.RunV2 `json:"data"`
	Page struct {
		Cursor  string `json:"cursor"`
		HasMore bool   `json:"hasMore"`
		Limit   int    `json:"limit"`
	} `json:"page"`
}

// getRuns GETs path?query and decodes a list answer; a non-200 is returned as an error.
func getRuns(t testing.TB, srv *httptest.Server, path string, q url.Values) (runsAnswer, error) {
	t.Helper()
	resp, err := http.Get(srv.URL + path + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out runsAnswer
	if resp.StatusCode != 200 {
		return out, fmt.Errorf("HTTP %d %s", resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return out, nil
}

// allPages follows the cursor to the end, failing on a repeated run.
func allPages(t *testing.T, srv *httptest.Server, path string, q url.Values) []api.RunV2 {
	t.Helper()
	var runs []api.RunV2
	seen := map[string]bool{}
	for page := 0; ; page++ {
		a, err := getRuns(t, srv, path, q)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		for _, r := range a.Data {
			if seen[r.ID] {
				t.Fatalf("page %d repeats run %s", page, r.ID)
			}
			seen[r.ID] = true
		}
		runs = append(runs, a.Data...)
		if !a.Page.HasMore {
			return runs
		}
		if a.Page.Cursor == "" || page > 1000 {
			t.Fatalf("page %d: hasMore without a cursor", page)
		}
		q.Set("cursor", a.Page.Cursor)
	}
}

func ids(runs []api.RunV2) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}

// Lists over a few hundred runs in mixed states: every order, filter and page size gives
// each matching run exactly once, in order.
func TestListRuns(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	trigger := adapter.EventTrigger("test/list", nil)
	mustCreate(t, app, "ok", trigger, func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
		return in.Event.Data["n"], nil
	})
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "bad", Retries: adapter.Ptr(0)},
		adapter.EventTrigger("test/list", adapter.Ptr("int(event.data.n) % 4 == 0")),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return nil, errors.New("boom")
		}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, app, "slow", adapter.EventTrigger("test/list", adapter.Ptr("int(event.data.n) % 10 == 0")),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return nil, step.Sleep(ctx, "nap", time.Hour)
		})
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "later", Throttle: &adapter.Throttle{Limit: 1, Period: time.Hour}},
		adapter.EventTrigger("test/list", adapter.Ptr("int(event.data.n) % 20 == 0")),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return "done", nil }); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	const events = 120
	var batch []any
	for n := range events {
		batch = append(batch, map[string]any{"name": "test/list", "data": map[string]any{"n": n}})
	}
	start := time.Now().Add(-time.Second)
	send(t, app, batch...)
	fn := func(id string) string { return app.AppID() + "-" + id }
	want := map[string]int{fn("ok"): 120, fn("bad"): 30, fn("slow"): 12, fn("later"): 6}
	total := 168
	// Visibility lists runs a moment after they start and records their end a moment after
	// they end: wait until it shows every run and every ok/bad run ended.
	query := fmt.Sprintf("TempestFunctionID IN ('%s', '%s', '%s', '%s')", fn("ok"), fn("bad"), fn("slow"), fn("later"))
	ended := fmt.Sprintf("TempestFunctionID IN ('%s', '%s', '%s') AND ExecutionStatus != 'Running'", fn("ok"), fn("bad"), fn("later"))
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		all, err1 := app.Temporal().CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		done, err2 := app.Temporal().CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: ended})
		if err1 == nil && err2 == nil && all.GetCount() == int64(total) && done.GetCount() == 151 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("visibility shows %d runs, %d ended (%v %v)", all.GetCount(), done.GetCount(), err1, err2)
		}
	}
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()

	t.Run("every run once, in order", func(t *testing.T) {
		for _, order := range []string{"ASC", "DESC"} {
			for _, limit := range []string{"7", "100"} {
				runs := allPages(t, srv, "/v2/runs", url.Values{"order": {order}, "limit": {limit}})
				if len(runs) != total {
					t.Fatalf("%s limit %s: %d runs, want %d", order, limit, len(runs), total)
				}
				got := map[string]int{}
				for i, r := range runs {
					got[r.Function.ID]++
					if r.App.ID != app.AppID() {
						t.Fatalf("run %s: app %q", r.ID, r.App.ID)
					}
					if i > 0 {
						c := runs[i-1].QueuedAt.Compare(r.QueuedAt)
						if c == 0 {
							c = strings.Compare(runs[i-1].ID, r.ID)
						}
						if (order == "ASC") != (c < 0) {
							t.Fatalf("%s: run %d (%s) out of order", order, i, r.ID)
						}
					}
					if r.QueuedAt.Before(start) || r.Trigger.EventName != "test/list" || r.Trigger.EventID == "" {
						t.Fatalf("run %+v", r)
					}
				}
				for f, n := range want {
					if got[f] != n {
						t.Errorf("%s limit %s: %d runs of %s, want %d", order, limit, got[f], f, n)
					}
				}
			}
		}
	})

	t.Run("statuses", func(t *testing.T) {
		count := func(q url.Values) map[string]int {
			q.Set("limit", "100")
			got := map[string]int{}
			for _, r := range allPages(t, srv, "/v2/runs", q) {
				got[r.Status+" "+strings.TrimPrefix(r.Function.ID, app.AppID()+"-")]++
			}
			return got
		}
		for status, want := range map[string]map[string]int{
			"FAILED":    {"FAILED bad": 30},
			"COMPLETED": {"COMPLETED ok": 120, "COMPLETED later": 1},
			"QUEUED":    {"QUEUED later": 5},
			"SCHEDULED": {"QUEUED later": 5},
			"RUNNING":   {"RUNNING slow": 12},
			"CANCELLED": {},
			"SKIPPED":   {},
		} {
			got := count(url.Values{"status": {status}})
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("status %s: %v, want %v", status, got, want)
			}
		}
		got := count(url.Values{"status": {"FAILED", "RUNNING"}})
		if fmt.Sprint(got) != fmt.Sprint(map[string]int{"FAILED bad": 30, "RUNNING slow": 12}) {
			t.Errorf("FAILED and RUNNING: %v", got)
		}
	})

	t.Run("function, app, if and output", func(t *testing.T) {
		runs := allPages(t, srv, "/v2/apps/"+app.AppID()+"/functions/bad/runs", url.Values{"limit": {"9"}, "order": {"ASC"}})
		if len(runs) != 30 {
			t.Fatalf("bad: %d runs", len(runs))
		}
		same := allPages(t, srv, "/v2/runs", url.Values{"function_id": {fn("bad")}, "limit": {"9"}, "order": {"ASC"}})
		if !slices.Equal(ids(runs), ids(same)) {
			t.Fatal("function_id lists other runs than the function's path")
		}
		if n := len(allPages(t, srv, "/v2/runs", url.Values{"app_id": {app.AppID()}, "limit": {"100"}})); n != total {
			t.Fatalf("app_id: %d runs", n)
		}
		odd := allPages(t, srv, "/v2/apps/"+app.AppID()+"/functions/ok/runs",
			url.Values{"if": {"int(event.data.n) % 2 == 1 && event.data.n < 40"}, "include_output": {"true"}, "limit": {"5"}})
		var outs []string
		for _, r := range odd {
			outs = append(outs, string(r.Output))
		}
		if len(odd) != 20 || odd[0].Status != api.V2Completed || odd[0].DurationMS == nil || odd[0].EndedAt == nil {
			t.Fatalf("if: %d runs %+v", len(odd), odd)
		}
		slices.Sort(outs)
		if !slices.Contains(outs, "39") || slices.Contains(outs, "2") || slices.Contains(outs, "41") {
			t.Fatalf("if: outputs %v", outs)
		}
		// A window on endedAt holds the ended runs only.
		n := len(allPages(t, srv, "/v2/runs", url.Values{"time_field": {"endedAt"}, "from": {start.Format(time.RFC3339Nano)}, "limit": {"100"}}))
		if n != 151 {
			t.Fatalf("endedAt window: %d runs, want 151", n)
		}
		// The v2 run and an event's v2 runs agree with the list.
		r := odd[0]
		resp, err := http.Get(srv.URL + "/v2/runs/" + r.ID)
		if err != nil {
			t.Fatal(err)
		}
		var one struct{ Data api.RunV2 }
		_ = json.NewDecoder(resp.Body).Decode(&one)
		resp.Body.Close()
		if one.Data.ID != r.ID || one.Data.Status != api.V2Completed || string(one.Data.Output) != string(r.Output) {
			t.Fatalf("GET /v2/runs/%s: %+v, listed %+v", r.ID, one.Data, r)
		}
		resp, err = http.Get(srv.URL + "/v2/events/" + r.Trigger.EventID + "/runs")
		if err != nil {
			t.Fatal(err)
		}
		var ev struct{ Data []api.RunV2 }
		_ = json.NewDecoder(resp.Body).Decode(&ev)
		resp.Body.Close()
		if !slices.Contains(ids(ev.Data), r.ID) {
			t.Fatalf("event %s runs %v lack %s", r.Trigger.EventID, ids(ev.Data), r.ID)
		}
	})

	t.Run("bad parameters", func(t *testing.T) {
		first, err := getRuns(t, srv, "/v2/runs", url.Values{"limit": {"3"}})
		if err != nil || !first.Page.HasMore {
			t.Fatalf("%v %+v", err, first.Page)
		}
		for path, q := range map[string]url.Values{
			"limit":           {"limit": {"0"}},
			"status":          {"status": {"DONE"}},
			"order":           {"order": {"up"}},
			"time_field":      {"time_field": {"createdAt"}},
			"from":            {"from": {"yesterday"}},
			"from must be":    {"from": {"2026-01-02T00:00:00Z"}, "until": {"2026-01-01T00:00:00Z"}},
			"cursor belongs":  {"cursor": {first.Page.Cursor}, "order": {"ASC"}},
			"is not a page":   {"cursor": {"nope"}},
			"if:":             {"if": {"event.data.n =="}},
			"app not found":   {"app_id": {"nope"}},
			"function ":       {"function_id": {"nope"}, "app_id": {app.AppID()}},
			"include_output ": {"include_output": {"maybe"}},
		} {
			if _, err := getRuns(t, srv, "/v2/runs", q); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "HTTP 4") {
				t.Errorf("%v: %v, want a 4xx about %q", q, err, path)
			}
		}
	})
}
