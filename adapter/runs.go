package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"

	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/eventlog"
	"github.com/tempestrun/tempest/workflows"
)

// ErrNotFound is returned for an unknown event or run.
var ErrNotFound = api.ErrNotFound

// ErrRunFinished is returned when cancelling a run that has already ended.
var ErrRunFinished = api.ErrRunFinished

// Event returns an event of the environment from the event log, by its internal id.
func (a *App) Event(ctx context.Context, id string) (*api.Event, error) {
	rec, err := a.logged(ctx, id)
	if err != nil {
		return nil, err
	}
	ev := eventFromRecord(rec)
	return &ev, nil
}

func (a *App) logged(ctx context.Context, id string) (*eventlog.Record, error) {
	rec, err := a.events.Get(ctx, a.opts.Environment, id)
	if errors.Is(err, eventlog.ErrNotFound) {
		return nil, fmt.Errorf("event %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load event %s: %w", id, err)
	}
	return rec, nil
}

// eventFromRecord is a logged event in Inngest's REST shape.
func eventFromRecord(rec *eventlog.Record) api.Event {
	var in inbound
	_ = json.Unmarshal(rec.Event, &in)
	ev := api.Event{
		InternalID: rec.InternalID, ReceivedAt: rec.ReceivedAt.UTC(), ID: in.ID, Name: rec.Name,
		Data: in.Data, User: in.User, TS: in.TS, V: in.V, Runs: rec.Runs, Reason: rec.Reason,
	}
	if rec.DispatchedAt != nil {
		t := rec.DispatchedAt.UTC()
		ev.DispatchedAt = &t
	}
	if ev.Runs == nil {
		ev.Runs = []string{}
	}
	return ev
}

// Events lists the environment's events from the log, newest first.
func (a *App) Events(ctx context.Context, q api.EventQuery) ([]api.Event, error) {
	recs, err := a.events.List(ctx, a.opts.Environment, eventlog.Filter{
		Name: q.Name, After: q.ReceivedAfter, Before: q.ReceivedBefore, Cursor: q.Cursor, Limit: q.Limit,
	})
	if errors.Is(err, eventlog.ErrNotFound) {
		return nil, &api.InputError{Msg: fmt.Sprintf("cursor %s is not an event of this environment: use the internal_id of an event listed before", q.Cursor)}
	}
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	out := make([]api.Event, len(recs))
	for i := range recs {
		out[i] = eventFromRecord(&recs[i])
	}
	return out, nil
}

// EventRuns returns the runs an event started.
func (a *App) EventRuns(ctx context.Context, id string) ([]api.FunctionRun, error) {
	rec, err := a.logged(ctx, id)
	if err != nil {
		return nil, err
	}
	runs := make([]api.FunctionRun, 0, len(rec.Runs))
	for _, rid := range rec.Runs {
		r, err := a.Run(ctx, rid)
		if errors.Is(err, ErrNotFound) {
			continue // a debounced or batched run that has not started yet
		}
		if err != nil {
			return nil, err
		}
		runs = append(runs, *r)
	}
	return runs, nil
}

// Run describes a run: its status, times and, once it has ended, its output (the
// handler's result, or {"error": {...}} for a failed run).
func (a *App) Run(ctx context.Context, id string) (*api.FunctionRun, error) {
	run, info, err := a.describe(ctx, id)
	if err != nil || info == nil {
		return run, err
	}
	switch info.GetStatus() {
	case enums.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		var out json.RawMessage
		if err := a.temporal.GetWorkflow(ctx, id, info.GetExecution().GetRunId()).Get(ctx, &out); err != nil {
			return nil, fmt.Errorf("load output of run %s: %w", id, err)
		}
		run.Output = out
	case enums.WORKFLOW_EXECUTION_STATUS_FAILED, enums.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
		enums.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		err := a.temporal.GetWorkflow(ctx, id, info.GetExecution().GetRunId()).Get(ctx, nil)
		run.Output = failureOutput(err)
	}
	return run, nil
}

// describe is a run without its output (one Describe call); info is nil for a run that
// never started (a skipped run's record).
func (a *App) describe(ctx context.Context, id string) (*api.FunctionRun, *workflowpb.WorkflowExecutionInfo, error) {
	desc, err := a.temporal.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		run, err := a.skipped(ctx, id)
		return run, nil, err
	}
	if err != nil {
		return nil, nil, fmt.Errorf("describe run %s: %w", id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetType().GetName() == skippedWorkflow { // a skipped run's Web UI record
		run, err := a.skippedFromRecord(ctx, id, info)
		return run, nil, err
	}
	run := &api.FunctionRun{
		RunID:        id,
		RunStartedAt: info.GetStartTime().AsTime(),
		FunctionID:   info.GetType().GetName(),
		Status:       runStatus(info.GetStatus()),
	}
	if p := info.GetSearchAttributes().GetIndexedFields()[SAEventID.GetName()]; p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &run.EventID)
	}
	if et := info.GetExecutionTime(); run.Status == api.StatusRunning && et != nil && et.AsTime().After(time.Now()) {
		at := et.AsTime()
		run.Status, run.StartAt = api.StatusScheduled, &at
	}
	if info.GetCloseTime() != nil {
		t := info.GetCloseTime().AsTime()
		run.EndedAt = &t
	}
	return run, info, nil
}

// failureOutput renders a run's error as Inngest does: {"error": {"name", "message"}}.
func failureOutput(err error) json.RawMessage {
	name, msg := "Error", "run failed"
	if err != nil {
		name, msg = workflows.Failure(err)
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"name": name, "message": msg}})
	return b
}

func runStatus(s enums.WorkflowExecutionStatus) string {
	switch s {
	case enums.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return api.StatusCompleted
	case enums.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return api.StatusCancelled
	case enums.WORKFLOW_EXECUTION_STATUS_FAILED, enums.WORKFLOW_EXECUTION_STATUS_TERMINATED,
		enums.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return api.StatusFailed
	default:
		return api.StatusRunning
	}
}

// CancelRun requests cancellation of a running run; it stops at its next step boundary.
func (a *App) CancelRun(ctx context.Context, id string) error {
	run, _, err := a.describe(ctx, id)
	if err != nil {
		return err
	}
	if run.Status != api.StatusRunning && run.Status != api.StatusScheduled {
		return fmt.Errorf("run %s is %s: %w", id, run.Status, ErrRunFinished)
	}
	if err := a.requestCancel(ctx, id); err != nil {
		return fmt.Errorf("cancel run %s: %w", id, err)
	}
	return nil
}

// requestCancel asks Temporal to cancel a run, and marks it in Redis first so that a step
// about to start in the same workflow task sees it (CancelRequested).
func (a *App) requestCancel(ctx context.Context, runID string) error {
	if err := a.redis.Set(ctx, flowcontrol.CancelKey(runID), 1, a.opts.EventRetention).Err(); err != nil {
		return fmt.Errorf("cancel run %s: %w", runID, err)
	}
	return a.temporal.CancelWorkflow(ctx, runID, "")
}
