package adapter_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

// A run skipped by its singleton is a completed workflow under its run id, listed by the
// function's and the event's search attributes (what the Web UI shows), and stays Skipped
// over REST, also after a retried send.
func TestSingletonSkippedRunInTemporal(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "solo", Singleton: &adapter.Singleton{Mode: "skip"}},
		adapter.EventTrigger("test/solo", nil), func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return nil, step.Sleep(ctx, "nap", time.Hour)
		}); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	ctx := context.Background()
	holder := runsOf(t, app, send(t, app, map[string]any{"name": "test/solo"})[0])[0]
	seed := fmt.Sprintf("%d,%s", time.Now().UnixMilli(), base64.StdEncoding.EncodeToString([]byte("skipped-01")))
	body := []json.RawMessage{json.RawMessage(`{"name":"test/solo"}`)}
	ids, err := app.Ingest(ctx, seed, body)
	if err == nil {
		err = app.WaitDispatched(ctx, ids...)
	}
	if err != nil {
		t.Fatal(err)
	}
	skipped := runsOf(t, app, ids[0])[0]
	if skipped.Status != api.StatusSkipped {
		t.Fatalf("second run: %s", skipped.Status)
	}

	var out map[string]string
	if err := app.Temporal().GetWorkflow(ctx, skipped.RunID, "").Get(ctx, &out); err != nil {
		t.Fatalf("the skipped run's workflow: %v", err)
	}
	if out["reason"] != "singleton" || out["run_id"] != holder.RunID {
		t.Errorf("its result: %v", out)
	}
	desc, err := app.Temporal().DescribeWorkflowExecution(ctx, skipped.RunID, "")
	if err != nil {
		t.Fatal(err)
	}
	var summary string
	_ = converter.GetDefaultDataConverter().FromPayload(desc.GetExecutionConfig().GetUserMetadata().GetSummary(), &summary)
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_COMPLETED || summary != "skipped: singleton held by "+holder.RunID {
		t.Errorf("in Temporal: %s, summary %q", info.GetStatus(), summary)
	}
	// Visibility lists a workflow a moment after it starts; each CountWorkflow is a round trip.
	query := fmt.Sprintf("TempestFunctionID = '%s-solo' AND TempestEventID = '%s' AND ExecutionStatus = 'Completed'", app.AppID(), ids[0])
	for deadline := time.Now().Add(20 * time.Second); ; {
		n, err := app.Temporal().CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		if err == nil && n.GetCount() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("visibility lists %v workflows for %s: %v", n.GetCount(), query, err)
		}
	}

	if r, err := app.Run(ctx, skipped.RunID); err != nil || r.Status != api.StatusSkipped || !strings.Contains(string(r.Output), holder.RunID) ||
		r.FunctionID != app.AppID()+"-solo" || r.EventID != ids[0] {
		t.Fatalf("over REST: %+v, %v", r, err)
	}
	if err := app.CancelRun(ctx, skipped.RunID); !errors.Is(err, adapter.ErrRunFinished) {
		t.Errorf("cancelling a skipped run: %v", err)
	}
	// Once the holder has ended, a retry of the skipped send stays skipped (its run id is
	// taken) and a new event starts a run.
	if err := app.CancelRun(ctx, holder.RunID); err != nil {
		t.Fatal(err)
	}
	waitRun(t, app, holder.RunID)
	if again, err := app.Ingest(ctx, seed, body); err != nil || again[0] != ids[0] {
		t.Fatalf("retry: %v %v", again, err)
	}
	if r, err := app.Run(ctx, skipped.RunID); err != nil || r.Status != api.StatusSkipped {
		t.Fatalf("after the retry: %+v, %v", r, err)
	}
	next := runsOf(t, app, send(t, app, map[string]any{"name": "test/solo"})[0])[0]
	if next.Status != api.StatusRunning {
		t.Fatalf("a new event after the holder ended: %s", next.Status)
	}
	_ = app.CancelRun(ctx, next.RunID)
}
