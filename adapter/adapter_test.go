package adapter_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/history/v1"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

// waitRun polls the run until it ends (or the test's deadline nears).
func waitRun(t *testing.T, app *adapter.App, runID string) *api.FunctionRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// GetWorkflow(...).Get long-polls until the run closes: no sleeping loop.
	_ = app.Temporal().GetWorkflow(ctx, runID, "").Get(ctx, nil)
	run, err := app.Run(ctx, runID)
	if err != nil {
		t.Fatalf("run %s: %v", runID, err)
	}
	if run.Status == api.StatusRunning {
		t.Fatalf("run %s still running", runID)
	}
	return run
}

func send(t testing.TB, app *adapter.App, events ...any) []string {
	t.Helper()
	ids, err := app.Send(context.Background(), events...)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return ids
}

func runsOf(t *testing.T, app *adapter.App, eventID string) []api.FunctionRun {
	t.Helper()
	runs, err := app.EventRuns(context.Background(), eventID)
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

type greet struct {
	Name string `json:"name"`
}

func TestFanOutToTwoFunctions(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	for _, id := range []string{"upper", "lower"} {
		_, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: id}, adapter.EventTrigger("user/signed.up", nil),
			func(ctx context.Context, in adapter.Input[greet]) (any, error) {
				return step.Run(ctx, "shout", func(context.Context) (string, error) {
					if id == "upper" {
						return strings.ToUpper(in.Event.Data.Name), nil
					}
					return strings.ToLower(in.Event.Data.Name), nil
				})
			})
		if err != nil {
			t.Fatal(err)
		}
	}
	testenv.StartWorker(t, app)
	ids := send(t, app, map[string]any{"name": "user/signed.up", "data": map[string]any{"name": "Ada"}})
	runs := runsOf(t, app, ids[0])
	if len(runs) != 2 {
		t.Fatalf("event started %d runs, want 2", len(runs))
	}
	got := map[string]string{}
	for _, r := range runs {
		done := waitRun(t, app, r.RunID)
		if done.Status != api.StatusCompleted || done.EventID != ids[0] {
			t.Fatalf("run %+v", done)
		}
		got[done.FunctionID] = string(done.Output)
	}
	want := map[string]string{app.AppID() + "-upper": `"ADA"`, app.AppID() + "-lower": `"ada"`}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s output %s, want %s (all: %v)", k, got[k], v, got)
		}
	}
}

func TestWildcardAndIfMatching(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	echo := func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return in.Event.Name, nil }
	mustCreate(t, app, "any-shop", adapter.EventTrigger("shop/*", nil), echo)
	mustCreate(t, app, "big-orders", adapter.EventTrigger("shop/order.placed", adapter.Ptr("event.data.total >= 100")), echo)
	mustCreate(t, app, "multi", adapter.MultipleTriggers{
		adapter.EventTrigger("billing.*", nil),
		adapter.EventTrigger("shop/refund", adapter.Ptr(`event.data.reason == "damaged"`)),
	}, echo)
	testenv.StartWorker(t, app)

	cases := []struct {
		event map[string]any
		want  []string
	}{
		{map[string]any{"name": "shop/order.placed", "data": map[string]any{"total": 150}}, []string{"any-shop", "big-orders"}},
		{map[string]any{"name": "shop/order.placed", "data": map[string]any{"total": 20}}, []string{"any-shop"}},
		{map[string]any{"name": "shop/order.placed"}, []string{"any-shop"}}, // no total: `if` is false, not an error
		{map[string]any{"name": "shop/refund", "data": map[string]any{"reason": "damaged"}}, []string{"any-shop", "multi"}},
		{map[string]any{"name": "billing.invoice"}, []string{"multi"}},
		{map[string]any{"name": "shopping/cart"}, nil},
		{map[string]any{"name": "billing"}, nil},
	}
	for _, c := range cases {
		ids := send(t, app, c.event)
		var got []string
		for _, r := range runsOf(t, app, ids[0]) {
			got = append(got, strings.TrimPrefix(r.FunctionID, app.AppID()+"-"))
			if done := waitRun(t, app, r.RunID); done.Status != api.StatusCompleted {
				t.Errorf("%v: run %s is %s", c.event, r.RunID, done.Status)
			}
		}
		if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(c.want)) {
			t.Errorf("%v started %v, want %v", c.event, got, c.want)
		}
	}
}

func sorted(s []string) []string {
	out := append([]string{}, s...)
	slices.Sort(out)
	return out
}

// rejects checks that registering a function with opts and tr fails with an error that
// contains msg.
func rejects(t *testing.T, app *adapter.App, opts adapter.FunctionOpts, tr adapter.Triggerable, msg string) {
	t.Helper()
	noop := func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil }
	if _, err := adapter.CreateFunction(app, opts, tr, noop); err == nil || !strings.Contains(err.Error(), msg) {
		t.Errorf("%+v with %+v: err = %v, want %q", opts, tr, err, msg)
	}
}

func mustCreate[T any](t testing.TB, app *adapter.App, id string, tr adapter.Triggerable, fn adapter.SDKFunction[T]) {
	t.Helper()
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: id}, tr, fn); err != nil {
		t.Fatal(err)
	}
}

// A completed step never runs again, also when another worker process takes the run over.
func TestMemoizationAcrossWorkerRestart(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	var before, after atomic.Int32
	sleeping := make(chan struct{}, 1)
	mustCreate(t, app, "restart", adapter.EventTrigger("test/restart", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			a, err := step.Run(ctx, "before", func(context.Context) (int, error) {
				select {
				case sleeping <- struct{}{}:
				default:
				}
				return int(before.Add(1)), nil
			})
			if err != nil {
				return nil, err
			}
			if err := step.Sleep(ctx, "gap", 2*time.Second); err != nil {
				return nil, err
			}
			b, err := step.Run(ctx, "after", func(context.Context) (int, error) { return int(after.Add(1)), nil })
			return []int{a, b}, err
		})
	stop := testenv.StartWorker(t, app)
	ids := send(t, app, map[string]any{"name": "test/restart"})
	<-sleeping
	stop() // the first worker is gone while the run sleeps
	// A new worker with an empty cache replays the history from the server.
	testenv.StartWorker(t, app)
	run := waitRun(t, app, runsOf(t, app, ids[0])[0].RunID)
	if run.Status != api.StatusCompleted || string(run.Output) != "[1,1]" {
		t.Fatalf("run %s output %s", run.Status, run.Output)
	}
	if before.Load() != 1 || after.Load() != 1 {
		t.Fatalf("steps ran before=%d after=%d times, want once each", before.Load(), after.Load())
	}
}

// Retries against the real server: RetryAfter sets each delay, NonRetriable stops at once,
// and the exhausted step's error reaches the handler.
func TestRetryScheduleOnRealServer(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	var mu sync.Mutex
	var at []time.Time
	mustCreate(t, app, "retry-after", adapter.EventTrigger("test/retry", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			_, err := step.Run(ctx, "flaky", func(ctx context.Context) (int, error) {
				mu.Lock()
				at = append(at, time.Now())
				mu.Unlock()
				return 0, adapter.RetryAfter(time.Second, errors.New("busy"))
			})
			var se *adapter.StepError
			if !errors.As(err, &se) {
				return nil, fmt.Errorf("want a StepError, got %v", err)
			}
			return se.Message, nil
		})
	var nonRetriable atomic.Int32
	mustCreate(t, app, "non-retriable", adapter.EventTrigger("test/nonretriable", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			_, err := step.Run(ctx, "declined", func(ctx context.Context) (int, error) {
				nonRetriable.Add(1)
				return 0, adapter.NonRetriable(errors.New("card declined"))
			})
			return nil, err // unhandled: the run fails
		})
	testenv.StartWorker(t, app)
	ids := send(t, app, map[string]any{"name": "test/retry"}, map[string]any{"name": "test/nonretriable"})

	r1 := waitRun(t, app, runsOf(t, app, ids[0])[0].RunID)
	if r1.Status != api.StatusCompleted || string(r1.Output) != `"busy"` {
		t.Fatalf("retry run: %s %s", r1.Status, r1.Output)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) != adapter.DefaultRetries+1 {
		t.Fatalf("step ran %d times, want %d", len(at), adapter.DefaultRetries+1)
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < time.Second || gap > 5*time.Second {
			t.Errorf("gap before attempt %d = %s, want about 1s (RetryAfter)", i+1, gap)
		}
	}
	r2 := waitRun(t, app, runsOf(t, app, ids[1])[0].RunID)
	if r2.Status != api.StatusFailed || !strings.Contains(string(r2.Output), "card declined") {
		t.Fatalf("non-retriable run: %s %s", r2.Status, r2.Output)
	}
	if nonRetriable.Load() != 1 {
		t.Fatalf("non-retriable step ran %d times, want 1", nonRetriable.Load())
	}
}

// Every step is a local activity of type RunStep with the step id as its summary, so the
// Web UI shows step names.
func TestHistoryShowsStepNames(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	mustCreate(t, app, "named", adapter.EventTrigger("test/named", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "load-user", func(context.Context) (int, error) { return 1, nil })
		})
	testenv.StartWorker(t, app)
	ids := send(t, app, map[string]any{"name": "test/named"})
	runID := runsOf(t, app, ids[0])[0].RunID
	waitRun(t, app, runID)
	it := app.Temporal().GetWorkflowHistory(context.Background(), runID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var markers []*history.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		data := ev.GetMarkerRecordedEventAttributes().GetDetails()["data"]
		if data != nil && bytes.Contains(data.GetPayloads()[0].GetData(), []byte(`"ActivityType":"RunStep"`)) {
			markers = append(markers, ev)
		}
	}
	if len(markers) != 1 {
		t.Fatalf("%d RunStep markers, want 1", len(markers))
	}
	if s := markers[0].GetUserMetadata().GetSummary(); s == nil || !bytes.Contains(s.GetData(), []byte("load-user")) {
		t.Errorf("step summary = %v, want the step id", s)
	}
}

func TestSameSeedStartsOneRunPerFunction(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	var calls atomic.Int32
	for _, id := range []string{"a", "b"} {
		mustCreate(t, app, id, adapter.EventTrigger("test/seed", nil),
			func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
				return step.Run(ctx, "count", func(context.Context) (int32, error) { return calls.Add(1), nil })
			})
	}
	testenv.StartWorker(t, app)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	seed := fmt.Sprintf("%d,%s", time.Now().UnixMilli(), base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%010d", time.Now().UnixNano()%1e10))))
	body := `[{"name":"test/seed","data":{"n":1}},{"name":"test/seed","data":{"n":2}}]`
	var first []string
	for i := range 3 { // the client's retries of one send, the last after the runs completed
		req, _ := http.NewRequest("POST", srv.URL+"/e/any", strings.NewReader(body))
		req.Header.Set("x-inngest-event-id-seed", seed)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			IDs    []string `json:"ids"`
			Status int      `json:"status"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if out.Status != 200 || len(out.IDs) != 2 || out.IDs[0] == out.IDs[1] {
			t.Fatalf("send %d: %+v", i, out)
		}
		if i == 0 {
			first = out.IDs
			if err := app.WaitDispatched(context.Background(), first...); err != nil {
				t.Fatal(err)
			}
			for _, id := range first {
				for _, r := range runsOf(t, app, id) {
					waitRun(t, app, r.RunID)
				}
			}
		} else if fmt.Sprint(out.IDs) != fmt.Sprint(first) {
			t.Fatalf("retry %d got ids %v, first send %v", i, out.IDs, first)
		}
	}
	if calls.Load() != 4 {
		t.Fatalf("steps ran %d times, want 4 (2 events x 2 functions, once each)", calls.Load())
	}
}

func TestCancelRun(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	var after atomic.Int32
	mustCreate(t, app, "long", adapter.EventTrigger("test/long", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			if err := step.Sleep(ctx, "long-nap", time.Hour); err != nil {
				return nil, err
			}
			return step.Run(ctx, "after", func(context.Context) (int32, error) { return after.Add(1), nil })
		})
	cancelled := make(chan adapter.FunctionFailed, 2)
	mustCreate(t, app, "on-cancel", adapter.EventTrigger("inngest/function.cancelled", nil),
		func(ctx context.Context, in adapter.Input[adapter.FunctionFailed]) (any, error) {
			cancelled <- in.Event.Data
			return nil, nil
		})
	testenv.StartWorker(t, app)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	ids := send(t, app, map[string]any{"name": "test/long"})
	runID := runsOf(t, app, ids[0])[0].RunID
	del := func() int {
		req, _ := http.NewRequest("DELETE", srv.URL+"/v1/runs/"+runID, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := del(); code != 200 {
		t.Fatalf("DELETE run: HTTP %d", code)
	}
	if run := waitRun(t, app, runID); run.Status != api.StatusCancelled {
		t.Fatalf("status %s, want Cancelled", run.Status)
	}
	if after.Load() != 0 {
		t.Fatal("a step after the cancelled sleep ran")
	}
	if c := recv(t, cancelled); c.RunID != runID || c.Inngest.Status != "Cancelled" || c.Error != nil {
		t.Fatalf("function.cancelled data %+v", c)
	}
	if code := del(); code != 409 {
		t.Fatalf("DELETE of a cancelled run: HTTP %d, want 409", code)
	}
}

func TestBadInputs(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, func(o *adapter.Options) { o.MaxEventSize = 1024 })
	mustCreate(t, app, "noop", adapter.EventTrigger("test/noop", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil })
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	many := "[" + strings.TrimSuffix(strings.Repeat(`{"name":"a"},`, 5001), ",") + "]"
	cases := []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"malformed JSON", "POST", "/e/k", `{"name": "a",`, 400, "Invalid JSON"},
		{"not an event", "POST", "/e/k", `"hello"`, 400, "must contain an event object or an array"},
		{"event over the limit", "POST", "/e/k", `{"name":"a","data":{"x":"` + strings.Repeat("x", 2000) + `"}}`, 400, "Event is over the max size: Max 1024 bytes"},
		{"5001 events", "POST", "/e/k", many, 400, "Cannot have more than 5000 events"},
		{"empty name", "POST", "/e/k", `{"name":"","data":{}}`, 400, "event name is empty"},
		{"missing name in a batch", "POST", "/e/k", `[{"name":"ok"},{"data":{}}]`, 400, "event 1: event name is empty"},
		{"reserved prefix", "POST", "/e/k", `{"name":"inngest/function.failed"}`, 400, "event name is reserved for internal use: inngest/function.failed"},
		{"reserved prefix any case", "POST", "/e/k", `{"name":"Inngest/x"}`, 400, "reserved for internal use"},
		{"data is an array", "POST", "/e/k", `{"name":"a","data":[1,2]}`, 400, "event data must be a JSON object"},
		{"data is a string", "POST", "/e/k", `{"name":"a","data":"x"}`, 400, "event data must be a JSON object"},
		{"ts out of range", "POST", "/e/k", `{"name":"a","ts":12}`, 400, "between 1980 and 2100"},
		{"unknown run id", "GET", "/v1/runs/01HE8AM9DPK9N37V1RKY1DNQF5", "", 404, "Function run not found"},
		{"malformed run id", "GET", "/v1/runs/nope", "", 400, "is not a ULID"},
		{"unknown event id", "GET", "/v1/events/01HE8AM9DPK9N37V1RKY1DNQF5", "", 404, "Event not found"},
		{"runs of an unknown event", "GET", "/v1/events/01HE8AM9DPK9N37V1RKY1DNQF5/runs", "", 404, "Event not found"},
		{"cancel unknown run", "DELETE", "/v1/runs/01HE8AM9DPK9N37V1RKY1DNQF5", "", 404, "Function run not found"},
		{"unknown path", "GET", "/v2/nothing", "", 404, "not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var out struct {
				Status int    `json:"status"`
				Error  string `json:"error"`
			}
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("body is not JSON: %s", b)
			}
			if resp.StatusCode != c.status || out.Status != c.status || !strings.Contains(out.Error, c.msg) {
				t.Fatalf("HTTP %d %s, want %d with %q", resp.StatusCode, b, c.status, c.msg)
			}
		})
	}
}

func TestEventKeysAndSigningKey(t *testing.T) {
	t.Parallel()
	const signingKey = "signkey-prod-12345678"
	app := testenv.App(t, func(o *adapter.Options) {
		o.Dev = false
		o.EventKeys = []string{"key-a", "key-b"}
		o.SigningKey = signingKey
	})
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	post := func(key string) int {
		resp, err := http.Post(srv.URL+"/e/"+key, "application/json", strings.NewReader(`{"name":"x/y"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if post("key-b") != 200 || post("wrong") != 401 {
		t.Fatal("event keys are not enforced")
	}
	get := func(auth string) int {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/runs/01HE8AM9DPK9N37V1RKY1DNQF5", nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The hashed form is what Inngest's SDKs send (spec example).
	hashed := "signkey-prod-b2ed992186a5cb19f6668aade821f502c1d00970dfd0e35128d51bac4649916c"
	if get("") != 401 || get("signkey-prod-0000") != 401 || get(signingKey) != 404 || get(hashed) != 404 {
		t.Fatalf("signing key auth: none=%d wrong=%d raw=%d hashed=%d", get(""), get("signkey-prod-0000"), get(signingKey), get(hashed))
	}
}

func TestRegistrationErrors(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	noop := func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil }
	mustCreate(t, app, "taken", adapter.EventTrigger("a/b", nil), noop)
	cases := []struct {
		name string
		opts adapter.FunctionOpts
		tr   adapter.Triggerable
		msg  string
	}{
		{"empty id", adapter.FunctionOpts{}, adapter.EventTrigger("a/b", nil), "function id is required"},
		{"bad id", adapter.FunctionOpts{ID: "has space"}, adapter.EventTrigger("a/b", nil), "use 1–128 letters"},
		{"duplicate id", adapter.FunctionOpts{ID: "taken"}, adapter.EventTrigger("a/b", nil), "already registered"},
		{"bad CEL", adapter.FunctionOpts{ID: "cel"}, adapter.EventTrigger("a/b", adapter.Ptr("event.data.x >")), "invalid expression"},
		{"CEL not bool", adapter.FunctionOpts{ID: "cel2"}, adapter.EventTrigger("a/b", adapter.Ptr(`"x"`)), "not a bool"},
		{"retries > 20", adapter.FunctionOpts{ID: "r", Retries: adapter.Ptr(21)}, adapter.EventTrigger("a/b", nil), "must be 0–20"},
		{"no trigger", adapter.FunctionOpts{ID: "t"}, adapter.MultipleTriggers{}, "at least one trigger"},
		{"empty event", adapter.FunctionOpts{ID: "e"}, adapter.EventTrigger("", nil), "event name is empty"},
		{"bad wildcard", adapter.FunctionOpts{ID: "w"}, adapter.EventTrigger("app*", nil), "wildcard"},
	}
	for _, c := range cases {
		rejects(t, app, c.opts, c.tr, c.msg)
	}
}

func TestNewFailsFastWhenTemporalIsUnreachable(t *testing.T) {
	t.Parallel()
	_, err := adapter.New(context.Background(), adapter.Options{
		AppID: "x", TemporalAddress: "127.0.0.1:1", RedisURL: testenv.RedisURL(), DatabaseURL: "sqlite:" + filepath.Join(t.TempDir(), "events.db"),
	})
	if err == nil || !strings.Contains(err.Error(), "temporal is unreachable at 127.0.0.1:1") {
		t.Fatalf("err = %v", err)
	}
	_, err = adapter.New(context.Background(), adapter.Options{AppID: "x", RedisURL: "redis://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "redis is unreachable") {
		t.Fatalf("err = %v", err)
	}
}

// A step that is running when the run is cancelled finishes (its context is not
// cancelled); its result is discarded and no further step runs.
func TestCancelLetsTheRunningStepFinish(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	started, release := make(chan struct{}), make(chan struct{})
	var finished, ctxCancelled, next atomic.Int32
	mustCreate(t, app, "busy", adapter.EventTrigger("test/busy", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			if _, err := step.Run(ctx, "work", func(ctx context.Context) (int, error) {
				close(started)
				<-release
				if ctx.Err() != nil {
					ctxCancelled.Add(1)
				}
				finished.Add(1)
				return 1, nil
			}); err != nil {
				return nil, err
			}
			return step.Run(ctx, "next", func(context.Context) (int32, error) { return next.Add(1), nil })
		})
	testenv.StartWorker(t, app)
	ids := send(t, app, map[string]any{"name": "test/busy"})
	runID := runsOf(t, app, ids[0])[0].RunID
	<-started
	if err := app.CancelRun(context.Background(), runID); err != nil {
		t.Fatal(err)
	}
	close(release)
	if r := waitRun(t, app, runID); r.Status != api.StatusCancelled {
		t.Fatalf("status %s", r.Status)
	}
	if finished.Load() != 1 || ctxCancelled.Load() != 0 || next.Load() != 0 {
		t.Fatalf("finished=%d ctxCancelled=%d next=%d, want 1 0 0", finished.Load(), ctxCancelled.Load(), next.Load())
	}
}
