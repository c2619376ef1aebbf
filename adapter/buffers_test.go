package adapter_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/testenv"
)

// collector records the runs of a buffered function: when each started and with which
// events.
type collector struct {
	mu   sync.Mutex
	runs [][]string // labels of each run's events
	at   []time.Time
	ch   chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 100)} }

func (c *collector) fn(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
	var labels []string
	for _, e := range in.Events {
		labels = append(labels, fmt.Sprint(e.Data["label"]))
	}
	c.mu.Lock()
	c.runs = append(c.runs, labels)
	c.at = append(c.at, time.Now())
	c.mu.Unlock()
	c.ch <- struct{}{}
	return labels, nil
}

func (c *collector) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		recv(t, c.ch)
	}
}

func (c *collector) snapshot() ([][]string, []time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]string(nil), c.runs...), append([]time.Time(nil), c.at...)
}

func TestDebounce(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	c, capped := newCollector(), newCollector()
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "debounced",
		Debounce: &adapter.Debounce{Period: time.Second, Key: adapter.Ptr("event.data.user")}},
		adapter.EventTrigger("test/debounce", nil), c.fn); err != nil {
		t.Fatal(err)
	}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "capped",
		Debounce: &adapter.Debounce{Period: time.Second, Timeout: adapter.Ptr(1500 * time.Millisecond)}},
		adapter.EventTrigger("test/capped", nil), capped.fn); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	ev := func(name, user, label string, ts int64) map[string]any {
		e := map[string]any{"name": name, "data": map[string]any{"user": user, "label": label}}
		if ts != 0 {
			e["ts"] = ts
		}
		return e
	}
	now := time.Now().UnixMilli()
	send(t, app, ev("test/debounce", "u1", "a1", now))
	send(t, app, ev("test/debounce", "u2", "b1", now))
	time.Sleep(300 * time.Millisecond)
	send(t, app, ev("test/debounce", "u1", "a2", now+300))
	send(t, app, ev("test/debounce", "u1", "stale", now-60_000)) // older than the buffered event: ignored
	time.Sleep(300 * time.Millisecond)
	last := send(t, app, ev("test/debounce", "u1", "a3", now+600))
	sentLast := time.Now()
	c.wait(t, 2)
	runs, at := c.snapshot()
	got := map[string]bool{}
	for i, r := range runs {
		got[strings.Join(r, ",")] = true
		if r[0] == "a3" && at[i].Sub(sentLast) < 900*time.Millisecond {
			t.Errorf("u1's run started %s after its last event, before the 1s quiet period", at[i].Sub(sentLast))
		}
	}
	if len(runs) != 2 || !got["a3"] || !got["b1"] {
		t.Fatalf("runs %v: want one per user, with the last event", runs)
	}
	if r := runsOf(t, app, last[0]); len(r) != 1 || r[0].Status == api.StatusFailed {
		t.Fatalf("the last event's run over REST: %+v", r)
	}

	// Events every 400 ms never leave a 1 s quiet period: the 1.5 s timeout fires the run.
	start := time.Now()
	for i := range 6 {
		send(t, app, ev("test/capped", "", fmt.Sprint("c", i), 0))
		time.Sleep(400 * time.Millisecond)
	}
	capped.wait(t, 1)
	_, cat := capped.snapshot()
	// Without the timeout the run would start 1 s after the last event (3 s): anything before
	// that is the timeout, however late a loaded machine starts it.
	if d := cat[0].Sub(start); d < 1400*time.Millisecond || d > 2900*time.Millisecond {
		t.Fatalf("capped run started %s after the first event, want about 1.5s", d)
	}
	capped.wait(t, 1) // the events after the first run opened a new debounce
}

func TestBatchEvents(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	c := newCollector()
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "batched",
		BatchEvents: &adapter.BatchEvents{MaxSize: 3, Timeout: 2 * time.Second, If: adapter.Ptr(`event.data.label != "urgent"`)}},
		adapter.EventTrigger("test/batch", nil), c.fn); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	start := time.Now()
	for i := range 7 {
		send(t, app, map[string]any{"name": "test/batch", "data": map[string]any{"label": fmt.Sprint("e", i)}})
	}
	send(t, app, map[string]any{"name": "test/batch", "data": map[string]any{"label": "urgent"}})
	c.wait(t, 4)
	runs, at := c.snapshot()
	sizes := map[int]int{}
	for i, r := range runs {
		if len(r) > 3 {
			t.Fatalf("a batch of %d events, more than MaxSize 3: %v", len(r), r)
		}
		sizes[len(r)]++
		if len(r) == 1 && r[0] != "urgent" {
			// Not before its timeout; the upper bound only catches a batch that never
			// flushes on its own (a loaded machine starts runs late).
			if d := at[i].Sub(start); d < 2*time.Second || d > 15*time.Second {
				t.Errorf("the last partial batch started %s after its first event, want its 2s timeout", d)
			}
		}
	}
	if sizes[3] != 2 || sizes[1] != 2 {
		t.Fatalf("batches %v: want two full batches, the remainder after the timeout, and the urgent event alone", runs)
	}
}

// A process that claims a due buffer and dies before starting its run loses nothing: the
// claim's lease expires and another flusher starts the run, once.
func TestAbandonedFlushStartsOnce(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	c := newCollector()
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "crashy",
		Debounce: &adapter.Debounce{Period: time.Second}}, adapter.EventTrigger("test/crashy", nil), c.fn); err != nil {
		t.Fatal(err)
	}
	_, rdb := testenv.Services(t)
	dead := flowcontrol.NewBuffers(rdb, nil)
	dead.Lease = time.Second
	send(t, app, map[string]any{"name": "test/crashy", "data": map[string]any{"label": "only"}})
	// The "dead" process claims the buffer once it is due, then never starts the run.
	var claimed []flowcontrol.Flush
	waitsUntil(t, func() bool {
		var err error
		claimed, err = dead.Claim(context.Background(), app.AppID()+"-crashy", 10)
		return err == nil && len(claimed) == 1
	})
	claimedAt := time.Now()
	testenv.StartWorker(t, app) // the live process's flusher
	c.wait(t, 1)
	runs, at := c.snapshot()
	if at[0].Sub(claimedAt) < 900*time.Millisecond {
		t.Fatalf("the run started %s after the claim, before its lease expired", at[0].Sub(claimedAt))
	}
	// Both flush it again: the run's id is the buffer's, so nothing starts twice.
	if err := app.StartRunForTest(context.Background(), claimed[0]); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.ch:
		t.Fatalf("the buffer's run started twice: %v", runs)
	case <-time.After(500 * time.Millisecond):
	}
}

func TestBufferValidation(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	for _, tc := range []struct {
		opts adapter.FunctionOpts
		msg  string
	}{
		{adapter.FunctionOpts{Debounce: &adapter.Debounce{Period: 100 * time.Millisecond}}, "between 1s and 168h"},
		{adapter.FunctionOpts{Debounce: &adapter.Debounce{Period: 2 * time.Second, Timeout: adapter.Ptr(time.Second)}}, "shorter than the period"},
		{adapter.FunctionOpts{BatchEvents: &adapter.BatchEvents{MaxSize: 1, Timeout: time.Second}}, "at least 2"},
		{adapter.FunctionOpts{BatchEvents: &adapter.BatchEvents{MaxSize: 5, Timeout: time.Millisecond}}, "at least 1s"},
		{adapter.FunctionOpts{BatchEvents: &adapter.BatchEvents{MaxSize: 5, Timeout: time.Second}, Debounce: &adapter.Debounce{Period: time.Second}}, "debounce"},
		{adapter.FunctionOpts{BatchEvents: &adapter.BatchEvents{MaxSize: 5, Timeout: time.Second}, Priority: &adapter.Priority{Run: adapter.Ptr("1")}}, "priority"},
		{adapter.FunctionOpts{BatchEvents: &adapter.BatchEvents{MaxSize: 5, Timeout: time.Second}, Cancel: []adapter.Cancel{{Event: "x"}}}, "cancelOn"},
	} {
		tc.opts.ID = "f"
		rejects(t, app, tc.opts, adapter.EventTrigger("a/b", nil), tc.msg)
	}
}

// A batch (and a step result) too large for a Temporal payload reaches the run by
// reference: it is stored in Redis, the history holds a small reference.
func TestLargeBatchPassesByReference(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	type big struct {
		Label string `json:"label"`
		Blob  string `json:"blob"`
	}
	sizes := make(chan int, 1)
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "big-batch",
		BatchEvents: &adapter.BatchEvents{MaxSize: 8, Timeout: time.Minute}},
		adapter.EventTrigger("test/big", nil),
		func(ctx context.Context, in adapter.Input[big]) (any, error) {
			total := 0
			for _, e := range in.Events {
				total += len(e.Data.Blob)
			}
			// A 3 MB step result, too.
			echo, err := step.Run(ctx, "echo", func(context.Context) ([]big, error) {
				out := make([]big, len(in.Events))
				for i, e := range in.Events {
					out[i] = e.Data
				}
				return out, nil
			})
			if err != nil {
				return nil, err
			}
			sizes <- total
			return len(echo), nil
		}); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	blob := strings.Repeat("x", 400<<10)
	var ids []string
	for i := range 8 {
		ids = append(ids, send(t, app, map[string]any{"name": "test/big", "data": map[string]any{"label": fmt.Sprint(i), "blob": blob}})[0])
	}
	if total := recv(t, sizes); total != 8*len(blob) {
		t.Fatalf("the run saw %d bytes of events, want %d", total, 8*len(blob))
	}
	r := waitRun(t, app, runsOf(t, app, ids[0])[0].RunID)
	if r.Status != api.StatusCompleted || string(r.Output) != "8" {
		t.Fatalf("%s %s", r.Status, r.Output)
	}
	it := app.Temporal().GetWorkflowHistory(context.Background(), r.RunID, "", false, 0)
	first, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	in := first.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0]
	if enc := string(in.GetMetadata()["encoding"]); enc != "tempest/redis-ref" || len(in.GetData()) > 100 {
		t.Fatalf("the run's input in the history is %q, %d bytes: want a reference", enc, len(in.GetData()))
	}
}
