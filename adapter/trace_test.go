package adapter_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

// getJSON GETs path and decodes {"data": ...} into out; it returns the status code.
func getJSON(t *testing.T, srv *httptest.Server, path string, out any) int {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && out != nil {
		if err := json.Unmarshal(b, &struct{ Data any }{out}); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	return resp.StatusCode
}

// The trace of a run with a retried step, a sleep, a wait that got its event, an invoke and
// a wait that timed out, read back from the run's history over REST.
func TestRunTrace(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	ping := app.AppID() + "/ping"
	mustCreate(t, app, "child", adapter.EventTrigger("test/never", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return 7, nil })
	var calls atomic.Int32
	mustCreate(t, app, "traced", adapter.EventTrigger(app.AppID()+"/trace", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			if _, err := step.Run(ctx, "flaky", func(ctx context.Context) (string, error) {
				if calls.Add(1) == 1 {
					return "", adapter.RetryAfter(time.Second, errors.New("boom"))
				}
				return "ok", nil
			}); err != nil {
				return nil, err
			}
			if err := step.Sleep(ctx, "nap", time.Second); err != nil {
				return nil, err
			}
			if _, err := step.WaitForEvent[adapter.Event](ctx, "wait-ping", step.WaitForEventOpts{Event: ping, Timeout: 30 * time.Second}); err != nil {
				return nil, err
			}
			if _, err := step.Invoke[int](ctx, "call-child", step.InvokeOpts{FunctionID: "child", Data: map[string]any{}}); err != nil {
				return nil, err
			}
			_, err := step.WaitForEvent[adapter.Event](ctx, "wait-never", step.WaitForEventOpts{Event: ping + ".never", Timeout: time.Second})
			if !errors.Is(err, step.ErrEventNotReceived) {
				return nil, err
			}
			return "done", nil
		})
	testenv.StartWorker(t, app)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()

	id := runsOf(t, app, send(t, app, map[string]any{"name": app.AppID() + "/trace"})[0])[0].RunID
	waitsFor(t, ping, "", nil, 1)
	var mid api.RunTrace // while it waits: the wait is running
	getJSON(t, srv, "/v2/runs/"+id+"/trace", &mid)
	if n := len(mid.Steps); n != 3 || mid.Steps[2].Kind != api.StepWait || mid.Steps[2].Status != api.StepRunning {
		t.Fatalf("trace while waiting: %+v", mid.Steps)
	}
	send(t, app, map[string]any{"name": ping, "data": map[string]any{"n": 1}})
	if r := waitRun(t, app, id); r.Status != api.StatusCompleted {
		t.Fatalf("run %s %s", r.Status, r.Output)
	}

	var tr api.RunTrace
	if code := getJSON(t, srv, "/v2/runs/"+id+"/trace?include_output=true", &tr); code != 200 {
		t.Fatalf("trace: HTTP %d", code)
	}
	if tr.Run.ID != id || tr.Run.Status != api.V2Completed || string(tr.Run.Output) != `"done"` {
		t.Fatalf("run %+v", tr.Run)
	}
	want := []struct{ id, kind, status string }{
		{"flaky", api.StepRun, api.StepCompleted}, {"nap", api.StepSleep, api.StepCompleted},
		{"wait-ping", api.StepWait, api.StepCompleted}, {"call-child", api.StepInvoke, api.StepCompleted},
		{"wait-never", api.StepWait, api.StepTimedOut},
	}
	if len(tr.Steps) != len(want) {
		t.Fatalf("%d steps, want %d: %+v", len(tr.Steps), len(want), tr.Steps)
	}
	for i, w := range want {
		s := tr.Steps[i]
		if s.ID != w.id || s.Kind != w.kind || s.Status != w.status || s.EndedAt == nil || s.EndedAt.Before(s.StartedAt) {
			t.Errorf("step %d: %s %s %s (%s..%v), want %+v", i, s.ID, s.Kind, s.Status, s.StartedAt, s.EndedAt, w)
		}
		if i > 0 && s.StartedAt.Before(tr.Steps[i-1].StartedAt) {
			t.Errorf("step %s started before %s", s.ID, tr.Steps[i-1].ID)
		}
	}
	flaky := tr.Steps[0]
	if len(flaky.Attempts) != 2 || flaky.Attempts[0].Status != api.StepFailed || flaky.Attempts[0].Error == nil ||
		flaky.Attempts[0].Error.Message != "boom" || flaky.Attempts[0].RetryAt == nil ||
		flaky.Attempts[1].Attempt != 1 || string(flaky.Attempts[1].Output) != `"ok"` || string(flaky.Output) != `"ok"` {
		t.Errorf("flaky attempts: %+v", flaky.Attempts)
	}
	if gap := flaky.Attempts[1].StartedAt.Sub(flaky.Attempts[0].EndedAt); gap < time.Second {
		t.Errorf("retry began %s after the failure, want >= 1s (RetryAfter)", gap)
	}
	if nap := tr.Steps[1]; nap.EndedAt.Sub(nap.StartedAt) < time.Second || nap.Until == nil {
		t.Errorf("sleep: %+v", nap)
	}
	if w := tr.Steps[2]; w.Event != ping || w.Timeout != "30s" || !strings.Contains(string(w.Output), `"n":1`) {
		t.Errorf("wait: %+v output %s", w, w.Output)
	}
	if c := tr.Steps[3]; c.FunctionID != app.AppID()+"-child" || c.RunID == "" || string(c.Output) != "7" {
		t.Errorf("invoke: %+v output %s", c, c.Output)
	}
	if w := tr.Steps[4]; w.Timeout != "1s" || w.Output != nil {
		t.Errorf("timed out wait: %+v", w)
	}

	// Two waits began, one got its event.
	fams := scrape(t, srv)
	if r, w := value(fams, "tempest_waits_registered_total", nil), value(fams, "tempest_waits_resumed_total", map[string]string{"kind": "wait"}); r != 2 || w != 1 {
		t.Errorf("waits registered %v, resumed %v; want 2 and 1", r, w)
	}

	// Without include_output, no outputs; bad input and unknown runs are 4xx.
	var bare api.RunTrace
	getJSON(t, srv, "/v2/runs/"+id+"/trace", &bare)
	if bare.Run.Output != nil || bare.Steps[0].Output != nil || bare.Steps[0].Attempts[1].Output != nil {
		t.Errorf("outputs without include_output: %+v", bare)
	}
	if code := getJSON(t, srv, "/v2/runs/"+id+"/trace?include_output=maybe", nil); code != 400 {
		t.Errorf("bad include_output: HTTP %d", code)
	}
	if code := getJSON(t, srv, "/v2/runs/01M8C5A8AE54CATSG6QDR7G7T3/trace", nil); code != 404 {
		t.Errorf("unknown run: HTTP %d", code)
	}
}
