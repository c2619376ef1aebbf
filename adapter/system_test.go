package adapter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

func recv[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("nothing received within 30s")
	}
	var zero T
	return zero
}

// A run's end emits inngest/function.finished (and .failed); OnFailure runs for the failed
// function only; functions triggered by system events emit none themselves.
func TestSystemEventsAndOnFailure(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	failures := make(chan adapter.FunctionFailed, 4)
	finished := make(chan adapter.FunctionFailed, 8)
	_, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "flaky", Retries: adapter.Ptr(0),
		OnFailure: func(ctx context.Context, in adapter.Input[adapter.FunctionFailed]) (any, error) {
			failures <- in.Event.Data
			return "handled", nil
		}},
		adapter.EventTrigger("test/flaky", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			if in.Event.Data["fail"] == true {
				return step.Run(ctx, "explode", func(context.Context) (int, error) { return 0, errors.New("kaboom") })
			}
			return map[string]int{"ok": 1}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, app, "watch", adapter.EventTrigger("inngest/function.finished", adapter.Ptr(`event.data.function_id.endsWith("-flaky")`)),
		func(ctx context.Context, in adapter.Input[adapter.FunctionFailed]) (any, error) {
			finished <- in.Event.Data
			return nil, nil
		})
	testenv.StartWorker(t, app)
	slug := app.AppID() + "-flaky"

	ids := send(t, app, map[string]any{"name": "test/flaky", "data": map[string]any{"fail": false}})
	okRun := runsOf(t, app, ids[0])[0].RunID
	got := recv(t, finished)
	if got.FunctionID != slug || got.RunID != okRun || got.Inngest.Status != "Completed" || string(got.Result) != `{"ok":1}` || got.Error != nil {
		t.Fatalf("finished event for success: %+v", got)
	}
	// The run's system event is logged once dispatched, with the run it started.
	logged := func() *api.Event {
		evs, err := app.Events(context.Background(), api.EventQuery{Name: "inngest/function.finished", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			var d adapter.FunctionFailed
			if json.Unmarshal(ev.Data, &d) == nil && d.RunID == okRun {
				return &ev
			}
		}
		return nil
	}
	var fin *api.Event
	for deadline := time.Now().Add(10 * time.Second); fin == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		fin = logged()
	}
	if fin == nil || fin.DispatchedAt == nil || len(fin.Runs) != 1 || fin.Reason != "" {
		t.Fatalf("logged function.finished of %s: %+v, want dispatched with the watch run", okRun, fin)
	}

	ids = send(t, app, map[string]any{"name": "test/flaky", "data": map[string]any{"fail": true}})
	failRun := runsOf(t, app, ids[0])[0].RunID
	if r := waitRun(t, app, failRun); r.Status != api.StatusFailed {
		t.Fatalf("status %s", r.Status)
	}
	f := recv(t, failures)
	if f.FunctionID != slug || f.RunID != failRun || f.Error == nil || f.Error.Message != "kaboom" {
		t.Fatalf("function.failed data: %+v (error %+v)", f, f.Error)
	}
	var trig struct {
		Name string         `json:"name"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(f.Event, &trig); err != nil || trig.Name != "test/flaky" || trig.Data["fail"] != true {
		t.Fatalf("function.failed event field: %s", f.Event)
	}
	got = recv(t, finished)
	if got.RunID != failRun || got.Inngest.Status != "Failed" || got.Error == nil {
		t.Fatalf("finished event for failure: %+v", got)
	}
	select {
	case extra := <-finished:
		t.Fatalf("unexpected finished event (loop guard broken?): %+v", extra)
	case extra := <-failures:
		t.Fatalf("OnFailure ran twice: %+v", extra)
	case <-time.After(500 * time.Millisecond):
	}
}

// step.SendEvent fans out like POST /e; the same ids never start a second run.
func TestStepSendEvent(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	received := make(chan string, 8)
	mustCreate(t, app, "sender", adapter.EventTrigger("test/send", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.SendEvent(ctx, "notify",
				adapter.Event{Name: "test/sent", Data: map[string]any{"n": 1}},
				adapter.Event{Name: "test/sent", Data: map[string]any{"n": 2}})
		})
	mustCreate(t, app, "receiver", adapter.EventTrigger("test/sent", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			received <- fmt.Sprint(in.Event.Data["n"])
			return nil, nil
		})
	testenv.StartWorker(t, app)
	ids := send(t, app, map[string]any{"name": "test/send"})
	r := waitRun(t, app, runsOf(t, app, ids[0])[0].RunID)
	var sent []string
	if err := json.Unmarshal(r.Output, &sent); err != nil || len(sent) != 2 {
		t.Fatalf("output %s", r.Output)
	}
	got := map[string]bool{recv(t, received): true, recv(t, received): true}
	if !got["1"] || !got["2"] {
		t.Fatalf("received %v", got)
	}
	ev, err := app.Event(context.Background(), sent[0])
	if err != nil || ev.Name != "test/sent" {
		t.Fatalf("sent event %v %v", ev, err)
	}
	// A retried send (same derived ids) is accepted and starts nothing new. step.SendEvent
	// returns at commit: the run is listed once the dispatch is recorded.
	if err := app.WaitDispatched(context.Background(), sent[0]); err != nil {
		t.Fatal(err)
	}
	runs := runsOf(t, app, sent[0])
	if len(runs) != 1 {
		t.Fatalf("%d runs", len(runs))
	}
	waitRun(t, app, runs[0].RunID)
	select {
	case extra := <-received:
		t.Fatalf("a sent event ran twice: %s", extra)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestStepSendEventRejectsInvalidEventsWithoutRetry(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	mustCreate(t, app, "bad-sender", adapter.EventTrigger("test/badsend", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			_, err := step.SendEvent(ctx, "notify", adapter.Event{Name: "inngest/fake"})
			var se *adapter.StepError
			if errors.As(err, &se) {
				return se.Message, nil
			}
			return nil, fmt.Errorf("want a StepError, got %v", err)
		})
	testenv.StartWorker(t, app)
	ids := send(t, app, map[string]any{"name": "test/badsend"})
	r := waitRun(t, app, runsOf(t, app, ids[0])[0].RunID)
	if r.Status != api.StatusCompleted || string(r.Output) != `"event name is reserved for internal use: inngest/fake"` {
		t.Fatalf("%s %s", r.Status, r.Output)
	}
}
