package adapter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/group"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

func TestInvoke(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	type childOut struct {
		Y           int    `json:"y"`
		Event       string `json:"event"`
		Correlation string `json:"correlation"`
		RunID       string `json:"run_id"`
	}
	mustCreate(t, app, "double", adapter.EventTrigger("test/never", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			x, _ := in.Event.Data["x"].(float64)
			if x < 0 {
				return nil, adapter.NonRetriable(errors.New("x must not be negative"))
			}
			inn, _ := in.Event.Data["_inngest"].(map[string]any)
			return childOut{Y: int(x) * 2, Event: in.Event.Name, Correlation: fmt.Sprint(inn["correlation_id"]), RunID: in.InputCtx.RunID}, nil
		})
	mustCreate(t, app, "slow", adapter.EventTrigger("test/never", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return nil, step.Sleep(ctx, "nap", time.Hour)
		})
	mustCreate(t, app, "caller", adapter.EventTrigger("test/invoke", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			ok, err := step.Invoke[childOut](ctx, "double-it", step.InvokeOpts{FunctionID: "double", Data: map[string]any{"x": 21}})
			if err != nil {
				return nil, err
			}
			_, failErr := step.Invoke[childOut](ctx, "double-neg", step.InvokeOpts{FunctionID: app.AppID() + "-double", Data: map[string]any{"x": -1}})
			_, slowErr := step.Invoke[any](ctx, "slow", step.InvokeOpts{FunctionID: "slow", Timeout: time.Second})
			_, missingErr := step.Invoke[any](ctx, "missing", step.InvokeOpts{FunctionID: "nope"})
			return map[string]any{"ok": ok, "fail": fmt.Sprint(failErr), "slow": fmt.Sprint(slowErr), "missing": fmt.Sprint(missingErr)}, nil
		})
	testenv.StartWorker(t, app)
	ids := send(t, app, map[string]any{"name": "test/invoke"})
	parent := runsOf(t, app, ids[0])[0].RunID
	r := waitRun(t, app, parent)
	var out struct {
		OK                  childOut
		Fail, Slow, Missing string
	}
	if err := json.Unmarshal(r.Output, &out); err != nil || r.Status != api.StatusCompleted {
		t.Fatalf("%s %s", r.Status, r.Output)
	}
	if out.OK.Y != 42 || out.OK.Event != "inngest/function.invoked" || out.OK.Correlation != parent+".double-it" {
		t.Fatalf("child output %+v", out.OK)
	}
	child, err := app.Run(context.Background(), out.OK.RunID)
	if err != nil || child.Status != api.StatusCompleted || child.FunctionID != app.AppID()+"-double" {
		t.Fatalf("the invoked run over REST: %+v %v", child, err)
	}
	for name, want := range map[string]string{
		out.Fail:    `step "double-neg" failed: x must not be negative`,
		out.Slow:    `did not finish within 1s`,
		out.Missing: `function "nope" not found`,
	} {
		if !strings.Contains(name, want) {
			t.Errorf("got %q, want it to contain %q", name, want)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// Branches run at the same time: each step waits until the other has started.
func TestParallelSteps(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	var started atomic.Int32
	both := make(chan struct{})
	barrier := func(v string) func(context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			if started.Add(1) == 2 {
				close(both)
			}
			select {
			case <-both:
				return v, nil
			case <-time.After(20 * time.Second):
				return "", adapter.NonRetriable(errors.New("the other branch never started: steps ran one after the other"))
			}
		}
	}
	mustCreate(t, app, "fan", adapter.EventTrigger("test/parallel", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			res := group.Parallel(ctx,
				func(ctx context.Context) (any, error) { return step.Run(ctx, "left", barrier("L")) },
				func(ctx context.Context) (any, error) { return step.Run(ctx, "right", barrier("R")) },
			)
			if err := res.AnyError(); err != nil {
				return nil, err
			}
			after, err := step.Run(ctx, "after", func(context.Context) (string, error) { return "done", nil })
			return []any{res[0].Value, res[1].Value, after}, err
		})
	testenv.StartWorker(t, app)
	ids := send(t, app, map[string]any{"name": "test/parallel"})
	r := waitRun(t, app, runsOf(t, app, ids[0])[0].RunID)
	if r.Status != api.StatusCompleted || string(r.Output) != `["L","R","done"]` {
		t.Fatalf("%s %s", r.Status, r.Output)
	}
}

func TestFetch(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/flaky":
			if hits.Add(1) == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(503)
				return
			}
			w.Header().Set("X-Echo", r.Header.Get("X-Token"))
			fmt.Fprintf(w, `{"method":%q}`, r.Method)
		default:
			w.WriteHeader(404)
			fmt.Fprint(w, "no such thing")
		}
	}))
	defer srv.Close()
	app := testenv.App(t, nil)
	mustCreate(t, app, "fetcher", adapter.EventTrigger("test/fetch", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			ok, err := step.Fetch[map[string]string](ctx, "get", step.FetchOpts{URL: srv.URL + "/flaky", Method: "POST", Headers: map[string]string{"X-Token": "t1"}})
			if err != nil {
				return nil, err
			}
			missing, err := step.Fetch[string](ctx, "missing", step.FetchOpts{URL: srv.URL + "/missing"})
			if err != nil {
				return nil, err
			}
			_, badErr := step.Fetch[string](ctx, "bad", step.FetchOpts{URL: "ftp://example.com"})
			return []any{ok.StatusCode, ok.Body["method"], ok.Headers["x-echo"], missing.StatusCode, missing.Body, fmt.Sprint(badErr)}, nil
		})
	testenv.StartWorker(t, app)
	ids := send(t, app, map[string]any{"name": "test/fetch"})
	r := waitRun(t, app, runsOf(t, app, ids[0])[0].RunID)
	want := `[200,"POST","t1",404,"no such thing","step \"bad\" failed: fetch: \"ftp://example.com\" is not an http(s) URL: not retriable"]`
	if r.Status != api.StatusCompleted || string(r.Output) != want {
		t.Fatalf("%s %s\nwant %s", r.Status, r.Output, want)
	}
	if hits.Load() != 2 {
		t.Fatalf("flaky endpoint hit %d times, want 2 (one 503, one retry)", hits.Load())
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	var after atomic.Int32
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "finish", Timeouts: &adapter.Timeouts{Finish: adapter.Ptr(time.Second)}},
		adapter.EventTrigger("test/finish", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			if _, err := step.Run(ctx, "slow", func(context.Context) (int, error) { time.Sleep(1500 * time.Millisecond); return 1, nil }); err != nil {
				return nil, err
			}
			return step.Run(ctx, "next", func(context.Context) (int32, error) { return after.Add(1), nil })
		}); err != nil {
		t.Fatal(err)
	}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "start", Timeouts: &adapter.Timeouts{Start: adapter.Ptr(time.Second)}},
		adapter.EventTrigger("test/start", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return "started", nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "bad", Timeouts: &adapter.Timeouts{Start: adapter.Ptr(-time.Second)}},
		adapter.EventTrigger("test/x", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil }); err == nil {
		t.Fatal("a negative timeout was accepted")
	}
	// The start-timeout run is created while no worker runs, and starts 1.5 s later.
	late := send(t, app, map[string]any{"name": "test/start"})
	time.Sleep(1500 * time.Millisecond)
	testenv.StartWorker(t, app)
	if r := waitRun(t, app, runsOf(t, app, late[0])[0].RunID); r.Status != api.StatusCancelled {
		t.Fatalf("start timeout: %s %s", r.Status, r.Output)
	}
	onTime := send(t, app, map[string]any{"name": "test/start"})
	if r := waitRun(t, app, runsOf(t, app, onTime[0])[0].RunID); r.Status != api.StatusCompleted {
		t.Fatalf("a run that started in time: %s", r.Status)
	}
	ids := send(t, app, map[string]any{"name": "test/finish"})
	if r := waitRun(t, app, runsOf(t, app, ids[0])[0].RunID); r.Status != api.StatusCancelled {
		t.Fatalf("finish timeout: %s %s", r.Status, r.Output)
	}
	if after.Load() != 0 {
		t.Fatal("the step after the finish timeout ran")
	}
}
