package examples_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/group"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/internal/testenv"
)

// Recorded histories of runs that use every part of the run workflow that talks to
// Redis or to other runs: a throttle gate, cancelOn rules, a singleton lock, concurrency
// leases, waits (one received, one timed out), an invoke, sent events, a sleep, parallel
// branches. They must keep replaying: a change to the run workflow that would break runs
// in flight fails TestFeatureHistoriesReplay. Record them again (only for a deliberate,
// versioned change) with
//
//	go test ./examples -run TestFeatureHistoriesRecord -update
var featureHistories = map[string]string{
	"tempest-dev-features": "testdata/features.history.json",
	"tempest-dev-child":    "testdata/features-child.history.json",
}

func defineFeatures(r adapter.Registrar) error {
	if _, err := adapter.CreateFunction(r, adapter.FunctionOpts{ID: "child"}, adapter.EventTrigger("demo/features.child", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "double", func(ctx context.Context) (float64, error) {
				n, _ := in.Event.Data["n"].(float64)
				return 2 * n, nil
			})
		}); err != nil {
		return err
	}
	_, err := adapter.CreateFunction(r, adapter.FunctionOpts{
		ID:          "features",
		Throttle:    &adapter.Throttle{Limit: 100, Period: time.Second},
		Cancel:      []adapter.Cancel{{Event: "demo/features.cancel", Match: "data.user"}},
		Singleton:   &adapter.Singleton{Key: adapter.Ptr("event.data.user"), Mode: "skip"},
		Concurrency: []adapter.Concurrency{{Limit: 2}, {Limit: 5, Key: adapter.Ptr("event.data.user")}},
	}, adapter.EventTrigger("demo/features", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			user, err := step.Run(ctx, "user", func(ctx context.Context) (string, error) {
				u, _ := in.Event.Data["user"].(string)
				return u, nil
			})
			if err != nil {
				return nil, err
			}
			// One branch waits for an approval the other sends a moment later.
			res := group.Parallel(ctx,
				func(ctx context.Context) (any, error) {
					return step.WaitForEvent[adapter.Event](ctx, "approval", step.WaitForEventOpts{
						Event: "demo/features.approved", Match: "data.user", Timeout: time.Minute})
				},
				func(ctx context.Context) (any, error) {
					if err := step.Sleep(ctx, "let-the-wait-begin", time.Second); err != nil {
						return nil, err
					}
					return step.SendEvent(ctx, "approve", adapter.Event{Name: "demo/features.approved", Data: map[string]any{"user": user}})
				})
			if err := res.AnyError(); err != nil {
				return nil, err
			}
			_, err = step.WaitForEvent[adapter.Event](ctx, "never", step.WaitForEventOpts{Event: "demo/features.never", Timeout: time.Second})
			if !errors.Is(err, step.ErrEventNotReceived) {
				return nil, err
			}
			doubled, err := step.Invoke[float64](ctx, "invoke-child", step.InvokeOpts{FunctionID: "child", Data: map[string]any{"n": 21}})
			if err != nil {
				return nil, err
			}
			return map[string]any{"user": user, "doubled": doubled}, nil
		})
	return err
}

// The feature runs on the real server, and their live histories replay.
func TestFeatureHistoriesRecord(t *testing.T) {
	app := devApp(t)
	if err := defineFeatures(app); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	ctx := context.Background()
	ids, err := app.Send(ctx, map[string]any{"name": "demo/features", "data": map[string]any{"user": "ana"}})
	if err != nil {
		t.Fatal(err)
	}
	runs, err := app.EventRuns(ctx, ids[0])
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs %v %v", runs, err)
	}
	var out map[string]any
	if err := app.Temporal().GetWorkflow(ctx, runs[0].RunID, "").Get(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if out["user"] != "ana" || out["doubled"] != 42.0 {
		t.Fatalf("output %v, want user ana and doubled 42", out)
	}
	child := ""
	hist := history(t, app, runs[0].RunID)
	for _, ev := range hist.Events {
		if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil {
			child = a.GetWorkflowExecution().GetWorkflowId()
		}
	}
	hists := map[string]*historypb.History{"tempest-dev-features": hist, "tempest-dev-child": history(t, app, child)}
	r := worker.NewWorkflowReplayer()
	if err := app.RegisterWorkflows(r); err != nil {
		t.Fatal(err)
	}
	for name, h := range hists {
		if err := r.ReplayWorkflowHistory(quiet, h); err != nil {
			t.Fatalf("live history of %s does not replay: %v", name, err)
		}
		if *update {
			b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(featureHistories[name], b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Histories recorded by an earlier version replay on the current code, with no services.
func TestFeatureHistoriesReplay(t *testing.T) {
	t.Parallel()
	fns := adapter.NewFunctions("tempest-dev")
	if err := defineFeatures(fns); err != nil {
		t.Fatal(err)
	}
	r := worker.NewWorkflowReplayer()
	if err := fns.RegisterWorkflows(r); err != nil {
		t.Fatal(err)
	}
	for name, file := range featureHistories {
		if err := r.ReplayWorkflowHistoryFromJSONFile(quiet, file); err != nil {
			t.Errorf("recorded history of %s does not replay on the current code: %v", name, err)
		}
	}
}

func history(t *testing.T, app *adapter.App, id string) *historypb.History {
	return testenv.History(t, app.Temporal(), id)
}
