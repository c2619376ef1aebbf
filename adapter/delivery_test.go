package adapter_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

// An event whose first dispatch fails after admission (a start never became durable) is
// in the log all the same: it is dispatched again from there, every function gets exactly
// one run, and the client's resends of the event (same id, no seed) are the same event.
func TestRetriedEventWithIDAfterFailedStartRunsEveryFunction(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	ran := make(chan string, 10)
	for _, id := range []string{"first", "second"} {
		mustCreate(t, app, id, adapter.EventTrigger("test/order", nil),
			func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
				return step.Run(ctx, "record", func(context.Context) (string, error) { ran <- id; return id, nil })
			})
	}
	testenv.StartWorker(t, app)
	ev := map[string]any{"name": "test/order", "id": "order-" + app.AppID(), "data": map[string]any{}}

	adapter.FailStartsForTest(app.AppID()+"-second", 1) // fan-out is partial: "first" starts, "second" does not
	ids := send(t, app, ev)                             // returns once the log's retry has dispatched it
	again := send(t, app, ev)
	if ids[0] != again[0] {
		t.Fatalf("the same event id got internal ids %s and %s", ids[0], again[0])
	}
	got := []string{recv(t, ran), recv(t, ran)}
	slices.Sort(got)
	if fmt.Sprint(got) != "[first second]" {
		t.Fatalf("functions ran: %v", got)
	}
	runs := runsOf(t, app, ids[0])
	if len(runs) != 2 {
		t.Fatalf("GET /v1/events/%s/runs lists %d runs, want 2: %+v", ids[0], len(runs), runs)
	}
	for _, r := range runs {
		if r := waitRun(t, app, r.RunID); r.Status != api.StatusCompleted {
			t.Fatalf("run %s: %s", r.RunID, r.Status)
		}
	}
	select {
	case fn := <-ran:
		t.Fatalf("%s ran a second time", fn)
	default:
	}
}

func seedHeader(n int) string {
	return fmt.Sprintf("%d,%s", time.Now().UnixMilli(), base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%010d", (time.Now().UnixNano()+int64(n))%1e10))))
}

// Once a buffer has flushed, the same event sent again (same id, or same seed) is not
// delivered a second time: not to a second batch, not to a second debounced run.
func TestBufferedFunctionsDeduplicateAfterFlush(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	batch, deb := newCollector(), newCollector()
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "batched",
		BatchEvents: &adapter.BatchEvents{MaxSize: 2, Timeout: time.Minute}},
		adapter.EventTrigger("test/dedup-batch", nil), batch.fn); err != nil {
		t.Fatal(err)
	}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "debounced",
		Debounce: &adapter.Debounce{Period: time.Second, Key: adapter.Ptr("event.data.label")}},
		adapter.EventTrigger("test/dedup-debounce", nil), deb.fn); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	ctx := context.Background()
	ev := func(name, label, id string) map[string]any {
		e := map[string]any{"name": name, "data": map[string]any{"label": label}}
		if id != "" {
			e["id"] = id
		}
		return e
	}
	seeded := func(seed string, e map[string]any) {
		t.Helper()
		raw, _ := json.Marshal(e)
		if _, err := app.Ingest(ctx, seed, []json.RawMessage{raw}); err != nil {
			t.Fatal(err)
		}
	}
	// Batches: e1 (by id) and e2 (by seed) fill the first batch; sent again they must
	// not reach the next one, which is e3 + e4.
	seed := seedHeader(1)
	send(t, app, ev("test/dedup-batch", "e1", "id-e1-"+app.AppID()))
	seeded(seed, ev("test/dedup-batch", "e2", ""))
	batch.wait(t, 1)
	send(t, app, ev("test/dedup-batch", "e1", "id-e1-"+app.AppID()))
	seeded(seed, ev("test/dedup-batch", "e2", ""))
	send(t, app, ev("test/dedup-batch", "e3", ""))
	send(t, app, ev("test/dedup-batch", "e4", ""))
	batch.wait(t, 1)
	runs, _ := batch.snapshot()
	if fmt.Sprint(runs) != "[[e1 e2] [e3 e4]]" {
		t.Fatalf("batches %v, want [[e1 e2] [e3 e4]]", runs)
	}

	// Debounce: d1 runs once; sent again (id), it must not open a new debounce, so the
	// next run is d2's alone.
	first := send(t, app, ev("test/dedup-debounce", "d1", "id-d1-"+app.AppID()))
	deb.wait(t, 1)
	dup := send(t, app, ev("test/dedup-debounce", "d1", "id-d1-"+app.AppID()))
	send(t, app, ev("test/dedup-debounce", "d2", ""))
	deb.wait(t, 1)
	if dup[0] != first[0] {
		t.Errorf("the duplicate got internal id %s, the first %s", dup[0], first[0])
	}
	select {
	case <-deb.ch:
		runs, _ := deb.snapshot()
		t.Fatalf("the duplicate was debounced again: runs %v", runs)
	case <-time.After(1500 * time.Millisecond): // d1's period has passed twice over
	}
	runs, _ = deb.snapshot()
	if fmt.Sprint(runs) != "[[d1] [d2]]" {
		t.Fatalf("debounced runs %v, want [[d1] [d2]]", runs)
	}
}

// A full batch closes at once: 25 events in one request to MaxSize 10 make runs of 10, 10
// and 5, also when they arrive concurrently.
func TestBatchNeverExceedsMaxSize(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	c := newCollector()
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "tens",
		BatchEvents: &adapter.BatchEvents{MaxSize: 10, Timeout: time.Second}},
		adapter.EventTrigger("test/tens", nil), c.fn); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	var evs []any
	for i := range 25 {
		evs = append(evs, map[string]any{"name": "test/tens", "data": map[string]any{"label": fmt.Sprint(i)}})
	}
	send(t, app, evs...)
	done := make(chan struct{})
	for g := range 5 { // and 25 more from 5 concurrent senders
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 5 {
				_, _ = app.Send(context.Background(), map[string]any{"name": "test/tens", "data": map[string]any{"label": fmt.Sprint("c", g, i)}})
			}
		}()
	}
	for range 5 {
		<-done
	}
	total := 0
	for total < 50 {
		recv(t, c.ch)
		runs, _ := c.snapshot()
		total = 0
		for _, r := range runs {
			if len(r) > 10 {
				t.Fatalf("a batch of %d events, more than MaxSize 10: %s", len(r), strings.Join(r, ","))
			}
			total += len(r)
		}
	}
}
