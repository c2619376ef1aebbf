package adapter_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

// waitReplay polls a replay until done says it is.
func waitReplay(t *testing.T, srv *httptest.Server, id string, done func(api.Replay) bool) api.Replay {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var r api.Replay
		if code := getJSON(t, srv, "/v1/replays/"+id, &r); code == 200 && done(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("replay %s: %+v", id, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A bulk replay over REST: the failed runs of a time range replayed at a rate, progress,
// cancelling a replay, and bad requests.
func TestReplayOverREST(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	var fixed atomic.Bool
	mustCreate(t, app, "imports", adapter.EventTrigger(app.AppID()+"/import", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "load", func(ctx context.Context) (bool, error) {
				if !fixed.Load() {
					return false, adapter.NonRetriable(errors.New("parser bug"))
				}
				return true, nil
			})
		})
	testenv.StartWorker(t, app)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()

	const n = 60
	from := time.Now().Add(-time.Second)
	evs := make([]any, n)
	for i := range evs {
		evs[i] = map[string]any{"name": app.AppID() + "/import", "data": map[string]any{"i": i}}
	}
	send(t, app, evs...)
	tc, _ := testenv.Services(t)
	countIs := func(query string, want int64) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			res, err := tc.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: query})
			if err == nil && res.GetCount() == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d, want %d (%v)", query, res.GetCount(), want, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	countIs(fmt.Sprintf("TempestFunctionID = '%s-imports' AND ExecutionStatus = 'Failed'", app.AppID()), n)
	until := time.Now().UTC().Format(time.RFC3339Nano)
	fixed.Store(true)

	body := func(extra string) string {
		return fmt.Sprintf(`{"app_id": %q, "function_id": "imports", "name": "after the fix", "from": %q, "until": %q%s}`,
			app.AppID(), from.UTC().Format(time.RFC3339Nano), until, extra)
	}
	var r api.Replay
	if code, b := postJSON(t, srv, "/v1/replays", body(`, "statuses": ["failed"], "rate": 20`), &r); code != 200 || r.ID == "" || r.Rate != 20 {
		t.Fatalf("start: HTTP %d %s", code, b)
	}
	r = waitReplay(t, srv, r.ID, func(r api.Replay) bool { return r.Status != api.ReplayRunning && r.Runs.Completed == n })
	if r.Status != api.ReplayCompleted || *r.Matched != n || r.Started != n || r.Skipped != 0 || r.Runs.Failed != 0 {
		t.Fatalf("replay: %+v", r)
	}
	// The rate: batches of 20 a second apart, so the last batch begins 2 s after the first.
	var runs []api.RunV2
	for _, s := range []string{"COMPLETED"} {
		runs = append(runs, allPages(t, srv, "/v2/apps/"+app.AppID()+"/functions/imports/runs", map[string][]string{"status": {s}, "limit": {"100"}})...)
	}
	var at []time.Time
	for _, run := range runs {
		if run.RerunOf == "" {
			t.Errorf("run %s of the replay has no rerun_of", run.ID)
		}
		at = append(at, run.QueuedAt)
	}
	slices.SortFunc(at, time.Time.Compare)
	if len(at) != n {
		t.Fatalf("%d replayed runs, want %d", len(at), n)
	}
	// From the first run of the first batch to the first of the last: two periods.
	if span := at[n-20].Sub(at[0]); span < 1900*time.Millisecond {
		t.Fatalf("the last batch began %s after the first, want 2 s or more", span)
	} else {
		t.Logf("replay rate: %d runs in batches of 20, last batch began %s after the first (all started within %s): %.2f runs/s for 20 asked",
			n, span.Round(time.Millisecond), at[n-1].Sub(at[0]).Round(time.Millisecond), float64(n-20)/span.Seconds())
	}

	// A slow replay, cancelled after its first batch: it starts no more.
	var slow api.Replay
	if code, b := postJSON(t, srv, "/v1/replays", body(`, "rate": 1`), &slow); code != 200 {
		t.Fatalf("start: HTTP %d %s", code, b)
	}
	waitReplay(t, srv, slow.ID, func(r api.Replay) bool { return r.Started >= 1 })
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/v1/replays/"+slow.ID, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	resp.Body.Close()
	slow = waitReplay(t, srv, slow.ID, func(r api.Replay) bool { return r.Status != api.ReplayRunning })
	if slow.Status != api.ReplayCancelled || slow.Started >= n/2 {
		t.Fatalf("cancelled replay: %+v", slow)
	}

	for _, c := range []struct {
		body string
		code int
		msg  string
	}{
		{`{"function_id": "imports"}`, 400, "app_id is required"},
		{body(`, "statuses": ["RUNNING"]`), 400, `status \"RUNNING\"`},
		{body(`, "rate": 5000`), 400, "rate 5000"},
		{body(`, "if": "event.data.i >"`), 400, "if:"},
		{strings.Replace(body(""), `"imports"`, `"nope"`, 1), 404, "function not found"},
		{fmt.Sprintf(`{"app_id": %q, "function_id": "imports", "from": %q, "until": %q}`, app.AppID(), until, from.UTC().Format(time.RFC3339Nano)), 400, "from must be before until"},
	} {
		if code, b := postJSON(t, srv, "/v1/replays", c.body, nil); code != c.code || !strings.Contains(b, c.msg) {
			t.Errorf("POST %s: HTTP %d %s, want %d with %q", c.body, code, b, c.code, c.msg)
		}
	}
	if code := getJSON(t, srv, "/v1/replays/01M8C5A8AE54CATSG6QDR7G7T3", nil); code != 404 {
		t.Errorf("unknown replay: HTTP %d", code)
	}
}
