package adapter_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/internal/testenv"
)

// One trace per request: the ingest span, and under it the run's start, its workflow and
// its step attempts (two steps, the first retried once).
func TestTracingSpanTree(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	var logs syncBuffer
	app := testenv.App(t, func(o *adapter.Options) {
		o.TracerProvider = tp
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	var calls atomic.Int32
	mustCreate(t, app, "traced", adapter.EventTrigger(app.AppID()+"/traced", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			step.Logger(ctx).Info("traced run began")
			if _, err := step.Run(ctx, "first", func(ctx context.Context) (int, error) {
				if calls.Add(1) == 1 {
					return 0, adapter.RetryAfter(10*time.Millisecond, errors.New("again"))
				}
				return 1, nil
			}); err != nil {
				return nil, err
			}
			return step.Run(ctx, "second", func(ctx context.Context) (int, error) { return 2, nil })
		})
	testenv.StartWorker(t, app)
	ids := send(t, app, map[string]any{"name": app.AppID() + "/traced"})
	run := runsOf(t, app, ids[0])[0].RunID
	waitRun(t, app, run)

	var root sdktrace.ReadOnlySpan
	deadline := time.Now().Add(10 * time.Second)
	for {
		spans := exp.GetSpans().Snapshots()
		var names []string
		byName := map[string]int{}
		for _, s := range spans {
			if s.Name() == "tempest.ingest" {
				root = s
			}
		}
		for _, s := range spans {
			if root != nil && s.SpanContext().TraceID() == root.SpanContext().TraceID() {
				names = append(names, s.Name())
				byName[s.Name()]++
			}
		}
		sort.Strings(names)
		if root != nil && byName["StartWorkflow:"+app.AppID()+"-traced"] == 1 && byName["RunWorkflow:"+app.AppID()+"-traced"] == 1 &&
			byName["RunActivity:RunStep"] == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("spans of the request's trace: %s", strings.Join(names, ", "))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if root.Parent().IsValid() {
		t.Errorf("the ingest span has a parent")
	}
	// The run names its trace.
	desc, err := app.Temporal().DescribeWorkflowExecution(context.Background(), run, "")
	if err != nil {
		t.Fatal(err)
	}
	var traceID string
	if p := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()[adapter.MemoTraceID]; p != nil {
		_ = jsonPayload(p.GetData(), &traceID)
	}
	if traceID != root.SpanContext().TraceID().String() {
		t.Errorf("run memo trace id %q, want %s", traceID, root.SpanContext().TraceID())
	}
	if !strings.Contains(logs.String(), `"trace_id":"`+traceID+`"`) {
		t.Errorf("step.Logger's line has no trace_id %s: %s", traceID, logs.String())
	}
	if r, err := app.RunV2(context.Background(), run); err != nil || r.TraceID != traceID {
		t.Errorf("GET /v2/runs/{id} trace_id %+v %v, want %s", r, err, traceID)
	}
}

func jsonPayload(data []byte, v any) error { return json.Unmarshal(data, v) }
