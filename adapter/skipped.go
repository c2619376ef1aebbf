package adapter

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/api"
)

// skippedWorkflow is the workflow type of a skipped run's record in Temporal: a workflow
// under the run's id that completes at once, so that the Web UI lists the run (status
// Completed, summary "skipped: ...") under the function's and the event's search attributes.
const skippedWorkflow = "tempest.skipped"

// skippedInput is the record's input; its result is the REST output of the skipped run.
type skippedInput struct {
	FunctionID string `json:"function_id"`
	Reason     string `json:"reason"`
	Holder     string `json:"holder"`
}

// memoHolder names the holder in the record's memo, for REST when Redis has lost the record.
const memoHolder = "holder"

func skippedRecordWorkflow(_ workflow.Context, in skippedInput) (map[string]string, error) {
	return map[string]string{"reason": in.Reason, "run_id": in.Holder}, nil
}

// startSkippedRecord starts the record of a run skipped by f's singleton (held by holder).
// An existing workflow under the run id (a retried send) is the record already.
func (a *App) startSkippedRecord(ctx context.Context, f *function, runID string, ev *accepted, holder string) error {
	_, err := a.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       runID,
		TaskQueue:                                a.opts.TaskQueue,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		EnableEagerStart:                         true,
		StaticSummary:                            "skipped: singleton held by " + holder,
		StaticDetails: fmt.Sprintf("Run %s of %s for event %s (%s) never started: the singleton key was held by run %s.",
			runID, f.slug, ev.internal, ev.ev.Name, holder),
		Memo: map[string]any{memoHolder: holder},
		TypedSearchAttributes: temporal.NewSearchAttributes(
			SAFunctionID.ValueSet(f.slug),
			SAEventID.ValueSet(ev.internal.String()),
			SAEventName.ValueSet(ev.ev.Name),
		),
	}, skippedWorkflow, skippedInput{FunctionID: f.slug, Reason: "singleton", Holder: holder})
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &already) {
		return fmt.Errorf("record skipped run %s of %s: %w", runID, f.slug, err)
	}
	return nil
}

// skippedFromRecord describes a skipped run found in Temporal: from its Redis record, or,
// when Redis no longer has it, from the workflow's search attributes and memo.
func (a *App) skippedFromRecord(ctx context.Context, id string, info *workflowpb.WorkflowExecutionInfo) (*api.FunctionRun, error) {
	run, err := a.skipped(ctx, id)
	if !errors.Is(err, ErrNotFound) {
		return run, err
	}
	dc := converter.GetDefaultDataConverter()
	run = &api.FunctionRun{RunID: id, RunStartedAt: info.GetStartTime().AsTime(), Status: api.StatusSkipped}
	sa := info.GetSearchAttributes().GetIndexedFields()
	if p := sa[SAFunctionID.GetName()]; p != nil {
		_ = dc.FromPayload(p, &run.FunctionID)
	}
	if p := sa[SAEventID.GetName()]; p != nil {
		_ = dc.FromPayload(p, &run.EventID)
	}
	ended := run.RunStartedAt
	run.EndedAt = &ended
	var holder string
	if p := info.GetMemo().GetFields()[memoHolder]; p != nil {
		_ = dc.FromPayload(p, &holder)
	}
	run.Output = skippedOutput(holder)
	return run, nil
}
