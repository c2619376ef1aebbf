package adapter_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/worker"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

// stamps records when each run's first step ran, by a label from the event.
type stamps struct {
	mu    sync.Mutex
	at    map[string]time.Time
	order []string
}

func (s *stamps) fn(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
	return step.Run(ctx, "stamp", func(context.Context) (bool, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		label := fmt.Sprint(in.Event.Data["label"])
		if _, ok := s.at[label]; !ok {
			s.at[label] = time.Now()
			s.order = append(s.order, label)
		}
		return true, nil
	})
}

func newStamps() *stamps { return &stamps{at: map[string]time.Time{}} }

func TestThrottleDelaysRunsInOrder(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	st := newStamps()
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "throttled", Throttle: &adapter.Throttle{Limit: 1, Period: time.Second}},
		adapter.EventTrigger("test/throttled", nil), st.fn); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	var ids []string
	firstSent := time.Now()
	for i := range 3 {
		ids = append(ids, send(t, app, map[string]any{"name": "test/throttled", "data": map[string]any{"label": i}})[0])
	}
	sent := time.Now()
	third := runsOf(t, app, ids[2])[0]
	if third.Status != api.StatusScheduled || third.StartAt == nil || third.StartAt.Sub(sent) < 1500*time.Millisecond {
		t.Fatalf("the third run over REST: %s, starts at %v", third.Status, third.StartAt)
	}
	for _, id := range ids {
		if r := waitRun(t, app, runsOf(t, app, id)[0].RunID); r.Status != api.StatusCompleted {
			t.Fatalf("%s", r.Status)
		}
	}
	if fmt.Sprint(st.order) != "[0 1 2]" {
		t.Fatalf("runs started in order %v, want FIFO", st.order)
	}
	// Run i may not begin before its slot, i seconds after the first send (a loaded machine
	// may begin it later).
	for i := 1; i < 3; i++ {
		if d := st.at[fmt.Sprint(i)].Sub(firstSent); d < time.Duration(i)*time.Second-50*time.Millisecond {
			t.Errorf("run %d began %s after the first send, before its slot at %ds", i, d, i)
		}
	}
}

func TestRateLimitDropsRuns(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	st := newStamps()
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "limited",
		RateLimit: &adapter.RateLimit{Limit: 10, Period: time.Hour, Key: adapter.Ptr("event.data.user")}},
		adapter.EventTrigger("test/limited", nil), st.fn); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	count := func(user string, n int) int {
		events := make([]any, n)
		for i := range events {
			events[i] = map[string]any{"name": "test/limited", "data": map[string]any{"user": user, "label": fmt.Sprintf("%s-%d", user, i)}}
		}
		total := 0
		for _, id := range send(t, app, events...) {
			total += len(runsOf(t, app, id))
		}
		return total
	}
	if n := count("u1", 8); n != 2 { // floor(10/10) + 1 from idle
		t.Fatalf("u1: %d runs, want 2", n)
	}
	if n := count("u2", 3); n != 2 { // another key, another limit
		t.Fatalf("u2: %d runs, want 2", n)
	}
}

// The same event id, sent concurrently from many goroutines, starts one run per function;
// an idempotency key allows one run per value.
func TestDedupAndIdempotencyUnderConcurrency(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	byID, byKey := newStamps(), newStamps()
	mustCreate(t, app, "a", adapter.EventTrigger("test/dedup", nil), byID.fn)
	mustCreate(t, app, "b", adapter.EventTrigger("test/dedup", nil), byID.fn)
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "once-per-order", Idempotency: adapter.Ptr("event.data.order")},
		adapter.EventTrigger("test/order", nil), byKey.fn); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	var wg sync.WaitGroup
	var mu sync.Mutex
	runs := map[string]bool{}
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := send(t, app,
				map[string]any{"name": "test/dedup", "id": "payment-42", "data": map[string]any{"label": g}},
				map[string]any{"name": "test/order", "data": map[string]any{"order": fmt.Sprint("o", g%2), "label": g}})
			for _, id := range ids {
				for _, r := range runsOf(t, app, id) {
					mu.Lock()
					runs[r.FunctionID+" "+r.RunID] = true
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	perFn := map[string]int{}
	for k := range runs {
		var fn, run string
		fmt.Sscan(k, &fn, &run)
		perFn[fn]++
		waitRun(t, app, run)
	}
	want := map[string]int{app.AppID() + "-a": 1, app.AppID() + "-b": 1, app.AppID() + "-once-per-order": 2}
	if fmt.Sprint(perFn) != fmt.Sprint(want) {
		t.Fatalf("runs per function %v, want %v", perFn, want)
	}
}

// With runs waiting for a worker, the high-priority ones are dispatched first, although
// they were sent after the low-priority ones.
func TestPriorityUnderBacklog(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, func(o *adapter.Options) {
		o.Worker = worker.Options{MaxConcurrentWorkflowTaskPollers: 2, MaxConcurrentWorkflowTaskExecutionSize: 2}
	})
	st := newStamps()
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "prio", Priority: &adapter.Priority{Run: adapter.Ptr("event.data.vip ? 600 : -600")}},
		adapter.EventTrigger("test/prio", nil), st.fn); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 6 {
		ids = append(ids, send(t, app, map[string]any{"name": "test/prio", "data": map[string]any{"label": fmt.Sprint("low", i), "vip": false}})[0])
	}
	for i := range 6 {
		ids = append(ids, send(t, app, map[string]any{"name": "test/prio", "data": map[string]any{"label": fmt.Sprint("high", i), "vip": true}})[0])
	}
	// Start the worker once matching holds all 12 tasks in its backlog.
	waitsUntil(t, func() bool {
		d, err := app.Temporal().WorkflowService().DescribeTaskQueue(context.Background(), &workflowservice.DescribeTaskQueueRequest{
			Namespace: app.Options().Namespace, TaskQueue: &taskqueuepb.TaskQueue{Name: app.Options().TaskQueue},
			TaskQueueType: enumspb.TASK_QUEUE_TYPE_WORKFLOW, ReportStats: true,
		})
		return err == nil && d.GetStats().GetApproximateBacklogCount() == 12
	})
	testenv.StartWorker(t, app)
	for _, id := range ids {
		waitRun(t, app, runsOf(t, app, id)[0].RunID)
	}
	first, last := st.order[:4], st.order[len(st.order)-4:]
	for _, l := range first {
		if l[:4] != "high" {
			t.Fatalf("dispatch order %v: the first runs should be high priority", st.order)
		}
	}
	for _, l := range last {
		if l[:3] != "low" {
			t.Fatalf("dispatch order %v: the last runs should be low priority", st.order)
		}
	}
}

func TestFlowControlValidation(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	for _, c := range []struct {
		opts adapter.FunctionOpts
		msg  string
	}{
		{adapter.FunctionOpts{RateLimit: &adapter.RateLimit{Limit: 0, Period: time.Minute}}, "limit is 0"},
		{adapter.FunctionOpts{RateLimit: &adapter.RateLimit{Limit: 1, Period: 25 * time.Hour}}, "at most 24h"},
		{adapter.FunctionOpts{RateLimit: &adapter.RateLimit{Limit: 1, Period: time.Hour, Key: adapter.Ptr("event.data.")}}, "rate limit key"},
		{adapter.FunctionOpts{Throttle: &adapter.Throttle{Limit: 1, Period: 500 * time.Millisecond}}, "between 1s and 168h"},
		{adapter.FunctionOpts{Throttle: &adapter.Throttle{Limit: 0, Period: time.Second}}, "limit is 0"},
		{adapter.FunctionOpts{Throttle: &adapter.Throttle{Limit: 1, Period: time.Second, Burst: -1}}, "burst is -1"},
		{adapter.FunctionOpts{Idempotency: adapter.Ptr("event.data.id"), RateLimit: &adapter.RateLimit{Limit: 1, Period: time.Hour}}, "not both"},
		{adapter.FunctionOpts{Idempotency: adapter.Ptr("event.data.id ==")}, "idempotency key"},
		{adapter.FunctionOpts{Priority: &adapter.Priority{Run: adapter.Ptr("event.data.x +")}}, "priority"},
	} {
		c.opts.ID = "f"
		rejects(t, app, c.opts, adapter.EventTrigger("a/b", nil), c.msg)
	}
}

// Two Tempest processes (two apps, each with its own Redis connection) serving one function
// keep its rate limit exact under concurrent sends.
func TestRateLimitExactAcrossTwoProcesses(t *testing.T) {
	t.Parallel()
	first := testenv.App(t, nil)
	second := testenv.App(t, func(o *adapter.Options) {
		o.AppID, o.Redis, o.RedisURL = first.AppID(), nil, testenv.RedisURL()
	})
	for _, app := range []*adapter.App{first, second} {
		if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "shared", RateLimit: &adapter.RateLimit{Limit: 20, Period: time.Hour}},
			adapter.EventTrigger("test/shared", nil), newStamps().fn); err != nil {
			t.Fatal(err)
		}
	}
	testenv.StartWorker(t, first)
	var wg sync.WaitGroup
	var mu sync.Mutex
	runs := 0
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			app := []*adapter.App{first, second}[g%2]
			for i := range 5 {
				ids := send(t, app, map[string]any{"name": "test/shared", "data": map[string]any{"label": fmt.Sprint(g, "-", i)}})
				n := len(runsOf(t, app, ids[0]))
				mu.Lock()
				runs += n
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if runs != 3 { // floor(20/10) + 1 from idle, whichever process admits them
		t.Fatalf("100 events through two processes started %d runs, want 3", runs)
	}
}

// 200 runs across 20 keys: a function limited to 1 step per key never runs two steps of a
// key at once, while the same events run an unlimited function's steps side by side (so the
// test can see an overlap when there is one).
func TestConcurrencyNeverExceedsLimit(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	var mu sync.Mutex
	running, maxSeen := map[string]int{}, map[string]int{}
	done := map[string]int{}
	work := func(name string) adapter.SDKFunction[map[string]any] {
		return func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			key := name + "/" + fmt.Sprint(in.Event.Data["key"])
			return step.Run(ctx, "work", func(context.Context) (bool, error) {
				mu.Lock()
				running[key]++
				maxSeen[name] = max(maxSeen[name], running[key])
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
				mu.Lock()
				running[key]--
				done[name]++
				mu.Unlock()
				return true, nil
			})
		}
	}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "limited",
		Concurrency: []adapter.Concurrency{{Limit: 1, Key: adapter.Ptr("event.data.key")}}},
		adapter.EventTrigger("test/conc", nil), work("limited")); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, app, "unlimited", adapter.EventTrigger("test/conc", nil), work("unlimited"))
	testenv.StartWorker(t, app)
	events := make([]any, 200)
	for i := range events {
		events[i] = map[string]any{"name": "test/conc", "data": map[string]any{"key": fmt.Sprint("k", i/10)}} // 10 runs in a row per key
	}
	ids := send(t, app, events...)
	for _, id := range ids {
		for _, r := range runsOf(t, app, id) {
			if r := waitRun(t, app, r.RunID); r.Status != api.StatusCompleted {
				t.Fatalf("%s %s", r.Status, r.Output)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("maximum steps of one key at once: %d with a limit of 1, %d without; %v steps done", maxSeen["limited"], maxSeen["unlimited"], done)
	if maxSeen["limited"] != 1 || done["limited"] != 200 || done["unlimited"] != 200 {
		t.Fatalf("limited function: max %d at once (limit 1), steps done %v", maxSeen["limited"], done)
	}
	if maxSeen["unlimited"] < 2 {
		t.Fatalf("the unlimited function never overlapped (max %d): the test cannot see a violation", maxSeen["unlimited"])
	}
}

// A sleeping run holds no slot: with a limit of 1, a second run's steps execute while the
// first run sleeps between its steps.
func TestSleepingRunsHoldNoSlot(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	var mu sync.Mutex
	var order []string
	mark := func(s string) func(context.Context) (bool, error) {
		return func(context.Context) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, s)
			return true, nil
		}
	}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "one-at-a-time", Concurrency: []adapter.Concurrency{{Limit: 1}}},
		adapter.EventTrigger("test/one", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			label := fmt.Sprint(in.Event.Data["label"])
			if _, err := step.Run(ctx, "first", mark(label)); err != nil {
				return nil, err
			}
			if label == "sleeper" {
				if err := step.Sleep(ctx, "nap", 2*time.Second); err != nil {
					return nil, err
				}
			}
			return step.Run(ctx, "after", mark(label+"-after"))
		}); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	a := send(t, app, map[string]any{"name": "test/one", "data": map[string]any{"label": "sleeper"}})
	waitsUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 1 })
	b := send(t, app, map[string]any{"name": "test/one", "data": map[string]any{"label": "other"}})
	waitRun(t, app, runsOf(t, app, a[0])[0].RunID)
	waitRun(t, app, runsOf(t, app, b[0])[0].RunID)
	if fmt.Sprint(order) != "[sleeper other other-after sleeper-after]" {
		t.Fatalf("order %v: the other run should finish while the sleeper sleeps", order)
	}
}

func waitsUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
	}
}

func TestConcurrencyValidation(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	for _, c := range []struct {
		conc []adapter.Concurrency
		msg  string
	}{
		{[]adapter.Concurrency{{Limit: 0}}, "limit is 0"},
		{[]adapter.Concurrency{{Limit: 1, Scope: "env"}}, `scope "env" needs a Key`},
		{[]adapter.Concurrency{{Limit: 1, Scope: "account"}}, `use "fn" or "env"`},
		{[]adapter.Concurrency{{Limit: 1}, {Limit: 1}, {Limit: 1}}, "at most 2"},
	} {
		rejects(t, app, adapter.FunctionOpts{ID: "c", Concurrency: c.conc}, adapter.EventTrigger("a/b", nil), c.msg)
	}
}

// The events of one request take throttle slots in array order, as when sent one by one.
func TestThrottleOrderWithinOneRequest(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "throttled", Throttle: &adapter.Throttle{Limit: 1, Period: time.Minute}},
		adapter.EventTrigger("test/throttled-batch", nil), newStamps().fn); err != nil {
		t.Fatal(err)
	}
	var evs []any
	for i := range 40 {
		evs = append(evs, map[string]any{"name": "test/throttled-batch", "data": map[string]any{"label": i}})
	}
	ids := send(t, app, evs...)
	var prev time.Time
	for i, id := range ids[1:] {
		r := runsOf(t, app, id)[0]
		if r.StartAt == nil || !r.StartAt.After(prev) {
			t.Fatalf("event %d starts at %v, not after event %d (%v): slots out of arrival order", i+1, r.StartAt, i, prev)
		}
		prev = *r.StartAt
	}
}

// A throttle holds where runs begin: runs whose scheduled slots passed while no worker was
// up still begin at most Limit+Burst at once, then one per Period/Limit.
func TestThrottleHoldsWhenWorkersAreBehind(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	st := newStamps()
	const limit, n = 5, 20
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "paced", Throttle: &adapter.Throttle{Limit: limit, Period: time.Second}},
		adapter.EventTrigger("test/backlog", nil), st.fn); err != nil {
		t.Fatal(err)
	}
	var evs []any
	for i := range n {
		evs = append(evs, map[string]any{"name": "test/backlog", "data": map[string]any{"label": i}})
	}
	ids := send(t, app, evs...)
	// Every slot passes with no worker to begin the runs.
	waitsUntil(t, func() bool { return runsOf(t, app, ids[n-1])[0].Status != api.StatusScheduled })
	testenv.StartWorker(t, app)
	for _, id := range ids {
		waitRun(t, app, runsOf(t, app, id)[0].RunID)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	var at []time.Time
	for _, v := range st.at {
		at = append(at, v)
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	// GCRA: limit at once, then one per 200 ms, so the 20 first steps span at least 3 s.
	want := time.Duration(n-limit) * time.Second / limit
	if span := at[n-1].Sub(at[0]); span < want*9/10 {
		t.Fatalf("%d runs began within %s, want at least %s (a burst past the throttle)", n, span, want)
	}
}

// A freed slot goes to the waiting step at once: waiters wait for it inside their step's
// activity and are woken by the release, so no run of a busy limit backs off in a timer
// (which left slots idle for up to a second).
func TestConcurrencySlotIsHandedOver(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	var mu sync.Mutex
	running, maxSeen := 0, 0
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "one-at-a-time",
		Concurrency: []adapter.Concurrency{{Limit: 2}}}, adapter.EventTrigger("test/handoff", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "work", func(context.Context) (bool, error) {
				mu.Lock()
				running++
				maxSeen = max(maxSeen, running)
				mu.Unlock()
				time.Sleep(200 * time.Millisecond)
				mu.Lock()
				running--
				mu.Unlock()
				return true, nil
			})
		}); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	evs := make([]any, 8)
	for i := range evs {
		evs[i] = map[string]any{"name": "test/handoff", "data": map[string]any{}}
	}
	for _, id := range send(t, app, evs...) {
		r := waitRun(t, app, runsOf(t, app, id)[0].RunID)
		if r.Status != api.StatusCompleted {
			t.Fatalf("%s %s", r.Status, r.Output)
		}
		it := app.Temporal().GetWorkflowHistory(context.Background(), r.RunID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			if e.GetEventType() == enumspb.EVENT_TYPE_TIMER_STARTED && strings.Contains(string(e.GetUserMetadata().GetSummary().GetData()), "concurrency slot") {
				t.Fatalf("run %s backed off in a timer for its slot instead of being handed one", r.RunID)
			}
		}
	}
	if maxSeen != 2 {
		t.Fatalf("at most %d steps at once, want the limit 2", maxSeen)
	}
}
