package adapter_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

// A paused function's events are stored and start nothing; on resume new events run, and
// the events of the pause are replayed with one call, once however often it is made.
func TestPauseAndResume(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	name := app.AppID() + "/job"
	mustCreate(t, app, "worker", adapter.EventTrigger(name, nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "work", func(ctx context.Context) (any, error) { return in.Event.Data["i"], nil })
		})
	mustCreate(t, app, "never-paused", adapter.EventTrigger("test/never", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil })
	testenv.StartWorker(t, app)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	fnPath := "/v2/apps/" + app.AppID() + "/functions/worker"
	job := func(i int) string {
		return send(t, app, map[string]any{"name": name, "data": map[string]any{"i": i}})[0]
	}

	before := job(0)
	waitRun(t, app, runsOf(t, app, before)[0].RunID)

	var d api.FunctionDetail
	if code, b := postJSON(t, srv, fnPath+"/pause", "", &d); code != 200 || !d.Paused || d.PausedAt == nil {
		t.Fatalf("pause: HTTP %d %s", code, b)
	}
	if getJSON(t, srv, fnPath, &d); !d.Paused {
		t.Fatalf("GET function while paused: %+v", d)
	}
	var paused []string
	for i := 1; i <= 3; i++ {
		paused = append(paused, job(i))
	}
	for _, id := range paused {
		ev := waitDispatched(t, app, id)
		if len(ev.Runs) != 0 || ev.Reason != adapter.ReasonPaused {
			t.Fatalf("event %s sent while paused: runs %v, reason %q", id, ev.Runs, ev.Reason)
		}
	}

	var r api.Resumed
	if code, b := postJSON(t, srv, fnPath+"/resume", "", &r); code != 200 || r.Function.Paused || r.Replayed != nil {
		t.Fatalf("resume: HTTP %d %s", code, b)
	}
	after := job(4)
	waitRun(t, app, runsOf(t, app, after)[0].RunID)
	if ev := waitDispatched(t, app, paused[0]); len(ev.Runs) != 0 {
		t.Fatalf("a paused event ran without a replay: %v", ev.Runs)
	}

	// Replay the pause's events: those sent during it, and the one sent just before (it had
	// its run: not started again). Twice, as a retried request would.
	for range 2 {
		if code, b := postJSON(t, srv, fnPath+"/resume", `{"replay_paused_events": true}`, &r); code != 200 || r.Replayed == nil ||
			r.Replayed.Events != 4 || r.Replayed.Runs != 4 {
			t.Fatalf("resume with replay: HTTP %d %s", code, b)
		}
	}
	for _, id := range append([]string{before}, paused...) {
		runs := runsOf(t, app, id)
		if len(runs) != 1 {
			t.Fatalf("event %s has %d runs, want 1", id, len(runs))
		}
		if r := waitRun(t, app, runs[0].RunID); r.Status != api.StatusCompleted {
			t.Fatalf("run of %s: %s", id, r.Status)
		}
		if ev, _ := app.Event(context.Background(), id); ev.Reason != "" || len(ev.Runs) != 1 {
			t.Fatalf("event %s after the replay: runs %v, reason %q", id, ev.Runs, ev.Reason)
		}
	}

	for _, c := range []struct {
		path string
		code int
		msg  string
	}{
		{"/v2/apps/" + app.AppID() + "/functions/never-paused/resume", 400, "has never been paused"},
		{"/v2/apps/" + app.AppID() + "/functions/nope/pause", 404, "Function not found: nope"},
		{"/v2/apps/nope/functions/worker/pause", 404, "App not found: nope"},
	} {
		if code, b := postJSON(t, srv, c.path, "", nil); code != c.code || !contains(b, c.msg) {
			t.Errorf("POST %s: HTTP %d %s, want %d with %q", c.path, code, b, c.code, c.msg)
		}
	}
}

// waitDispatched waits until the event is dispatched and returns it.
func waitDispatched(t *testing.T, app *adapter.App, id string) *api.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ev, err := app.Event(context.Background(), id)
		if err == nil && ev.DispatchedAt != nil {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s not dispatched: %v", id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
