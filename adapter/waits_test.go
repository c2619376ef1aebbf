package adapter_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/testenv"
)

// waitsFor blocks until n waits for events named name (with data.<field> == value when
// field is set) are registered: tests send the awaited event only once the wait exists.
func waitsFor(t *testing.T, name, field string, value any, n int) {
	t.Helper()
	_, rdb := testenv.Services(t)
	ws := flowcontrol.NewWaits(rdb, nil)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		got, err := ws.Candidates(context.Background(), name, func(path string) (any, bool) {
			if field == "" || path != "data."+field {
				return nil, false
			}
			return value, true
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %d waits for %s registered within 20s", n, name)
}

type order struct {
	OrderID string `json:"orderId"`
	Min     int    `json:"min"`
}

func TestWaitForEventMatchIfAndTimeout(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	ev := func(name string, data map[string]any) map[string]any {
		return map[string]any{"name": name, "data": data}
	}
	pay := app.AppID() + "/payment.done"
	mustCreate(t, app, "await-payment", adapter.EventTrigger(app.AppID()+"/order.created", nil),
		func(ctx context.Context, in adapter.Input[order]) (any, error) {
			opts := step.WaitForEventOpts{Event: pay, Timeout: 30 * time.Second, Match: "data.orderId"}
			if in.Event.Data.OrderID == "short" {
				opts.Timeout = time.Second
			}
			if in.Event.Data.Min > 0 {
				opts = step.WaitForEventOpts{Event: pay, Timeout: 30 * time.Second, If: "async.data.amount >= event.data.min"}
			}
			got, err := step.WaitForEvent[adapter.Event](ctx, "wait-payment", opts)
			if errors.Is(err, step.ErrEventNotReceived) {
				return "timed out", nil
			}
			if err != nil {
				return nil, err
			}
			return got.Data["amount"], nil
		})
	testenv.StartWorker(t, app)

	a := send(t, app, ev(app.AppID()+"/order.created", map[string]any{"orderId": "A"}))
	b := send(t, app, ev(app.AppID()+"/order.created", map[string]any{"orderId": "B"}))
	waitsFor(t, pay, "orderId", "A", 1)
	waitsFor(t, pay, "orderId", "B", 1)
	send(t, app, ev(pay, map[string]any{"orderId": "B", "amount": 2}), ev(pay, map[string]any{"orderId": "A", "amount": 1}))
	send(t, app, ev(pay, map[string]any{"orderId": "A", "amount": 99})) // A's wait was claimed: ignored
	for id, want := range map[string]string{a[0]: "1", b[0]: "2"} {
		r := waitRun(t, app, runsOf(t, app, id)[0].RunID)
		if r.Status != api.StatusCompleted || string(r.Output) != want {
			t.Errorf("run for %s: %s %s, want %s", id, r.Status, r.Output, want)
		}
	}

	// If: the first event with a large enough amount wins.
	c := send(t, app, ev(app.AppID()+"/order.created", map[string]any{"orderId": "C", "min": 10}))
	waitsFor(t, pay, "", nil, 1)
	send(t, app, ev(pay, map[string]any{"amount": 5}), ev(pay, map[string]any{"amount": 12}), ev(pay, map[string]any{"amount": 50}))
	if r := waitRun(t, app, runsOf(t, app, c[0])[0].RunID); string(r.Output) != "12" {
		t.Errorf("if-wait got %s, want 12", r.Output)
	}

	// An event sent before the wait began does not count; the timeout is not a failure.
	send(t, app, ev(pay, map[string]any{"orderId": "short", "amount": 7}))
	d := send(t, app, ev(app.AppID()+"/order.created", map[string]any{"orderId": "short"}))
	if r := waitRun(t, app, runsOf(t, app, d[0])[0].RunID); r.Status != api.StatusCompleted || string(r.Output) != `"timed out"` {
		t.Errorf("timeout run: %s %s", r.Status, r.Output)
	}
}

func TestWaitForEventBadOptionsFailTheRun(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	mustCreate(t, app, "bad-wait", adapter.EventTrigger("test/badwait", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.WaitForEvent[any](ctx, "w", step.WaitForEventOpts{Event: "x", Timeout: time.Minute, If: "async.data.x ==", Match: ""})
		})
	testenv.StartWorker(t, app)
	ids := send(t, app, map[string]any{"name": "test/badwait"})
	r := waitRun(t, app, runsOf(t, app, ids[0])[0].RunID)
	if r.Status != api.StatusFailed || !strings.Contains(string(r.Output), "invalid expression") {
		t.Fatalf("%s %s", r.Status, r.Output)
	}
}

func TestCancelOn(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	created, cancelled := app.AppID()+"/order.created", app.AppID()+"/order.cancelled"
	sleeper := func(ctx context.Context, in adapter.Input[order]) (any, error) {
		return nil, step.Sleep(ctx, "nap", time.Hour)
	}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "fulfil",
		Cancel: []adapter.Cancel{{Event: cancelled, Match: "data.orderId"}}}, adapter.EventTrigger(created, nil), sleeper); err != nil {
		t.Fatal(err)
	}
	// Cancelled by the next event of its own trigger, never by its own.
	self := app.AppID() + "/self"
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "latest-only",
		Cancel: []adapter.Cancel{{Event: self}}}, adapter.EventTrigger(self, nil), sleeper); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	x := send(t, app, map[string]any{"name": created, "data": map[string]any{"orderId": "X"}})
	y := send(t, app, map[string]any{"name": created, "data": map[string]any{"orderId": "Y"}})
	waitsFor(t, cancelled, "orderId", "X", 1)
	waitsFor(t, cancelled, "orderId", "Y", 1)
	send(t, app, map[string]any{"name": cancelled, "data": map[string]any{"orderId": "X"}})
	if r := waitRun(t, app, runsOf(t, app, x[0])[0].RunID); r.Status != api.StatusCancelled {
		t.Fatalf("X: %s", r.Status)
	}
	yRun, err := app.Run(context.Background(), runsOf(t, app, y[0])[0].RunID)
	if err != nil || yRun.Status != api.StatusRunning {
		t.Fatalf("Y should still run: %+v %v", yRun, err)
	}
	_ = app.CancelRun(context.Background(), yRun.RunID)

	first := send(t, app, map[string]any{"name": self})
	waitsFor(t, self, "", nil, 1)
	second := send(t, app, map[string]any{"name": self})
	if r := waitRun(t, app, runsOf(t, app, first[0])[0].RunID); r.Status != api.StatusCancelled {
		t.Fatalf("first self run: %s", r.Status)
	}
	secondRun := runsOf(t, app, second[0])[0]
	if secondRun.Status != api.StatusRunning {
		t.Fatalf("second self run was cancelled by its own trigger: %s", secondRun.Status)
	}
	_ = app.CancelRun(context.Background(), secondRun.RunID)
}

func TestCancelRuleValidation(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	for _, c := range []struct {
		rules []adapter.Cancel
		msg   string
	}{
		{[]adapter.Cancel{{}}, "event name is required"},
		{[]adapter.Cancel{{Event: "a", If: adapter.Ptr("x"), Match: "data.id"}}, "set If or Match, not both"},
		{[]adapter.Cancel{{Event: "a", If: adapter.Ptr("async.data.x >")}}, "invalid expression"},
		{[]adapter.Cancel{{Event: "a", Timeout: 400 * 24 * time.Hour}}, "out of range"},
		{make([]adapter.Cancel, 6), "at most 5"},
	} {
		rejects(t, app, adapter.FunctionOpts{ID: "c", Cancel: c.rules}, adapter.EventTrigger("a/b", nil), c.msg)
	}
}

func TestSingleton(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	nap := func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
		return nil, step.Sleep(ctx, "nap", time.Hour)
	}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "skip",
		Singleton: &adapter.Singleton{Key: adapter.Ptr("event.data.user"), Mode: "skip"}}, adapter.EventTrigger("test/skip", nil), nap); err != nil {
		t.Fatal(err)
	}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "cancel",
		Singleton: &adapter.Singleton{Mode: "cancel"}}, adapter.EventTrigger("test/cancel", nil), nap); err != nil {
		t.Fatal(err)
	}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "bad", Singleton: &adapter.Singleton{Mode: "queue"}},
		adapter.EventTrigger("test/x", nil), nap); err == nil || !strings.Contains(err.Error(), `use "skip" or "cancel"`) {
		t.Fatalf("bad mode: %v", err)
	}
	testenv.StartWorker(t, app)
	ctx := context.Background()
	runOf := func(name, user string) api.FunctionRun {
		ids := send(t, app, map[string]any{"name": name, "data": map[string]any{"user": user}})
		return runsOf(t, app, ids[0])[0]
	}
	first := runOf("test/skip", "u1")
	if first.Status != api.StatusRunning {
		t.Fatalf("first run %s", first.Status)
	}
	second := runOf("test/skip", "u1")
	if second.Status != api.StatusSkipped || !strings.Contains(string(second.Output), first.RunID) {
		t.Fatalf("second run for the same key: %s %s", second.Status, second.Output)
	}
	if other := runOf("test/skip", "u2"); other.Status != api.StatusRunning {
		t.Fatalf("a run for another key: %s", other.Status)
	} else {
		defer app.CancelRun(ctx, other.RunID)
	}
	if err := app.CancelRun(ctx, first.RunID); err != nil {
		t.Fatal(err)
	}
	waitRun(t, app, first.RunID)
	third := runOf("test/skip", "u1")
	if third.Status != api.StatusRunning {
		t.Fatalf("after the holder ended, a new run: %s", third.Status)
	}
	defer app.CancelRun(ctx, third.RunID)

	a := runOf("test/cancel", "")
	b := runOf("test/cancel", "")
	if r := waitRun(t, app, a.RunID); r.Status != api.StatusCancelled {
		t.Fatalf("cancel mode: the holder is %s", r.Status)
	}
	if r, _ := app.Run(ctx, b.RunID); r.Status != api.StatusRunning {
		t.Fatalf("cancel mode: the new run is %s", r.Status)
	}
	app.CancelRun(ctx, b.RunID)
}

// The singleton check comes before the throttle: a skipped run takes no throttle slot, so
// the next run after the holder gets the slot right after the holder's.
func TestSingletonSkipTakesNoThrottleSlot(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "solo", Singleton: &adapter.Singleton{Mode: "skip"},
		Throttle: &adapter.Throttle{Limit: 1, Period: time.Minute}}, adapter.EventTrigger("test/solo", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return nil, step.Sleep(ctx, "nap", time.Hour)
		}); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	ctx := context.Background()
	runOf := func() api.FunctionRun { return runsOf(t, app, send(t, app, map[string]any{"name": "test/solo"})[0])[0] }
	holder := runOf()
	for range 3 {
		if r := runOf(); r.Status != api.StatusSkipped {
			t.Fatalf("a run while the holder runs: %s", r.Status)
		}
	}
	if err := app.CancelRun(ctx, holder.RunID); err != nil {
		t.Fatal(err)
	}
	waitRun(t, app, holder.RunID)
	next := runOf()
	defer app.CancelRun(ctx, next.RunID)
	// The holder's slot was at its start; the next slot is one minute later (three skipped
	// runs taking slots would put it at four).
	if next.Status != api.StatusScheduled || next.StartAt == nil || next.StartAt.After(holder.RunStartedAt.Add(90*time.Second)) {
		t.Fatalf("the run after the holder: %s at %v (holder began %v)", next.Status, next.StartAt, holder.RunStartedAt)
	}
}

func TestBulkCancellation(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	mustCreate(t, app, "remind", adapter.EventTrigger("test/remind", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return nil, step.Sleep(ctx, "wait", time.Hour)
		})
	testenv.StartWorker(t, app)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	var runs []string
	for _, user := range []string{"u1", "u2", "u1"} {
		ids := send(t, app, map[string]any{"name": "test/remind", "data": map[string]any{"user": user}})
		runs = append(runs, runsOf(t, app, ids[0])[0].RunID)
	}
	// Visibility lists runs a moment after they start: wait until it shows all three.
	query := fmt.Sprintf("TempestFunctionID = '%s-remind' AND ExecutionStatus = 'Running'", app.AppID())
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		n, err := app.Temporal().CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		if err == nil && n.GetCount() == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("visibility shows %v runs: %v", n.GetCount(), err)
		}
	}
	post := func(body string) (int, string) {
		resp, err := http.Post(srv.URL+"/v1/cancellations", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	before := time.Now().Add(time.Second).UTC().Format(time.RFC3339)
	for body, want := range map[string]string{
		`{}`: "app_id is required; function_id is required; started_before is required",
		`{"app_id":"x","function_id":"remind","started_before":"` + before + `"}`:                                             "function not found",
		`{"app_id":"` + app.AppID() + `","function_id":"remind","started_before":"2999-01-01T00:00:00Z"}`:                     "started_before must be in the past",
		`{"app_id":"` + app.AppID() + `","function_id":"remind","started_before":"` + before + `","if":"event.data.user =="}`: "invalid expression",
	} {
		if code, got := post(body); code/100 != 4 || !strings.Contains(got, want) {
			t.Errorf("%s: HTTP %d %s, want %q", body, code, got, want)
		}
	}
	code, got := post(`{"app_id":"` + app.AppID() + `","function_id":"remind","started_after":"2020-01-01T00:00:00Z","started_before":"` + before + `","if":"event.data.user == 'u1'"}`)
	if code != 200 || !strings.Contains(got, `"cancelled":2`) {
		t.Fatalf("HTTP %d %s", code, got)
	}
	for i, want := range []string{api.StatusCancelled, api.StatusRunning, api.StatusCancelled} {
		if i == 1 {
			r, _ := app.Run(context.Background(), runs[i])
			if r.Status != want {
				t.Errorf("run %d: %s, want %s", i, r.Status, want)
			}
			continue
		}
		if r := waitRun(t, app, runs[i]); r.Status != want {
			t.Errorf("run %d: %s, want %s", i, r.Status, want)
		}
	}
	app.CancelRun(context.Background(), runs[1])
}

// A run is cancellable from the moment its trigger is acknowledged: before its first
// workflow task (no worker yet) and while it waits for its throttle slot (Scheduled).
func TestCancelOnBeforeTheRunStarts(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	created, cancelled := app.AppID()+"/job.created", app.AppID()+"/job.cancelled"
	ran := make(chan string, 10)
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "paced",
		Throttle: &adapter.Throttle{Limit: 1, Period: time.Hour},
		Cancel:   []adapter.Cancel{{Event: cancelled, Match: "data.id"}}}, adapter.EventTrigger(created, nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "work", func(context.Context) (string, error) { ran <- fmt.Sprint(in.Event.Data["id"]); return "", nil })
		}); err != nil {
		t.Fatal(err)
	}
	// No worker: the first run has not reached its first workflow task when its cancel
	// event arrives right after the trigger's send returned.
	a := send(t, app, map[string]any{"name": created, "data": map[string]any{"id": "a"}})
	send(t, app, map[string]any{"name": cancelled, "data": map[string]any{"id": "a"}})
	// The second waits an hour for its throttle slot.
	b := send(t, app, map[string]any{"name": created, "data": map[string]any{"id": "b"}})
	if r := runsOf(t, app, b[0])[0]; r.Status != api.StatusScheduled {
		t.Fatalf("b: %s, want Scheduled", r.Status)
	}
	send(t, app, map[string]any{"name": cancelled, "data": map[string]any{"id": "b"}})
	testenv.StartWorker(t, app)
	for _, id := range []string{a[0], b[0]} {
		if r := waitRun(t, app, runsOf(t, app, id)[0].RunID); r.Status != api.StatusCancelled {
			t.Fatalf("run of %s: %s, want Cancelled", id, r.Status)
		}
	}
	select {
	case id := <-ran:
		t.Fatalf("run %s executed its step", id)
	default:
	}
}
