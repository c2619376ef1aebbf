package examples_test

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/examples"
	"github.com/tempestrun/tempest/internal/testenv"
)

var update = flag.Bool("update", false, "record testdata/hello-world.history.json from a live run")

const helloHistory = "testdata/hello-world.history.json"

var quiet = log.NewStructuredLogger(slog.New(slog.DiscardHandler))

func devApp(t *testing.T) *adapter.App {
	return testenv.App(t, func(o *adapter.Options) {
		o.AppID = "tempest-dev"
		o.TaskQueue = fmt.Sprintf("examples-%d", time.Now().UnixNano())
	})
}

// The example runs on the real server, and its live history replays against the code.
func TestHelloLiveHistoryReplays(t *testing.T) {
	app := devApp(t)
	if err := examples.Register(app); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	ids, err := app.Send(context.Background(), map[string]any{"name": "demo/hello.world", "data": map[string]any{"name": "Grace"}})
	if err != nil {
		t.Fatal(err)
	}
	runs, err := app.EventRuns(context.Background(), ids[0])
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs %v %v", runs, err)
	}
	var out map[string]string
	if err := app.Temporal().GetWorkflow(context.Background(), runs[0].RunID, "").Get(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	if out["message"] != "Hello Grace!" {
		t.Fatalf("output %v", out)
	}
	hist := history(t, app, runs[0].RunID)
	r := worker.NewWorkflowReplayer()
	if err := app.RegisterWorkflows(r); err != nil {
		t.Fatal(err)
	}
	if err := r.ReplayWorkflowHistory(quiet, hist); err != nil {
		t.Fatalf("live history does not replay: %v", err)
	}
	if *update {
		b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(helloHistory, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A history recorded by an earlier version must replay on the current code: a change
// that would break running hello-world runs fails here.
// It needs no services: the definitions replay on their own (adapter.Functions).
func TestHelloRecordedHistoryReplays(t *testing.T) {
	t.Parallel()
	fns := adapter.NewFunctions("tempest-dev")
	if err := examples.Register(fns); err != nil {
		t.Fatal(err)
	}
	r := worker.NewWorkflowReplayer()
	if err := fns.RegisterWorkflows(r); err != nil {
		t.Fatal(err)
	}
	if err := r.ReplayWorkflowHistoryFromJSONFile(quiet, helloHistory); err != nil {
		t.Fatalf("recorded history does not replay on the current code: %v", err)
	}
}

// Reordering steps is caught on replay with a message that says what changed.
func TestReorderedStepsAreCaughtOnReplay(t *testing.T) {
	t.Parallel()
	app := devApp(t)
	_, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "hello-world"}, adapter.EventTrigger("demo/hello.world", nil),
		func(ctx context.Context, in adapter.Input[examples.HelloData]) (any, error) {
			msg, err := step.Run(ctx, "greet", func(context.Context) (string, error) { return "reordered", nil })
			if err != nil {
				return nil, err
			}
			_, err = step.Run(ctx, "get-name", func(context.Context) (string, error) { return "x", nil })
			return msg, err
		})
	if err != nil {
		t.Fatal(err)
	}
	r := worker.NewWorkflowReplayer()
	if err := app.RegisterWorkflows(r); err != nil {
		t.Fatal(err)
	}
	err = r.ReplayWorkflowHistoryFromJSONFile(quiet, helloHistory)
	if err == nil {
		t.Fatal("a history replayed on code with its steps reordered")
	}
	if !strings.Contains(err.Error(), `step order changed: the run's history has step "get-name" where the code now runs "greet"`) {
		t.Fatalf("replay error does not explain the change: %v", err)
	}
}
