package adapter

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/expr"
	"github.com/tempestrun/tempest/internal/ids"
)

// CancelRuns cancels, in bulk, the running runs of a function of this app started in
// [StartedAfter, StartedBefore] whose triggering event matches If. Runs are found through
// Temporal's visibility, which lags starts by a moment: a run started a few milliseconds
// before the request may be missed.
func (a *App) CancelRuns(ctx context.Context, req api.CancellationRequest) (*api.Cancellation, error) {
	if req.AppID != a.opts.AppID {
		return nil, fmt.Errorf("app %q: %w", req.AppID, ErrNotFound)
	}
	f, ok := a.resolve(req.FunctionID)
	if !ok {
		return nil, fmt.Errorf("function %q: %w", req.FunctionID, ErrNotFound)
	}
	var cond *expr.Program
	if req.If != "" {
		p, err := expr.CompileBool(req.If)
		if err != nil {
			return nil, &api.InputError{Msg: err.Error()}
		}
		cond = p
	}
	// The workflow type leaves out skipped runs' records, which share the search attributes.
	query := fmt.Sprintf("%s = '%s' AND WorkflowType = '%s' AND ExecutionStatus = 'Running' AND StartTime <= '%s'",
		SAFunctionID.GetName(), f.Slug, f.Slug, req.StartedBefore.UTC().Format(time.RFC3339Nano))
	if req.StartedAfter != nil {
		query += fmt.Sprintf(" AND StartTime >= '%s'", req.StartedAfter.UTC().Format(time.RFC3339Nano))
	}
	out := &api.Cancellation{
		ID: ids.NewEventID(time.Now()).String(), CreatedAt: time.Now().UTC(), AppID: req.AppID, FunctionID: f.Slug,
		StartedAfter: req.StartedAfter, StartedBefore: *req.StartedBefore, If: req.If,
	}
	// Every condition is evaluated before any run is cancelled, so that an `if` over its cost
	// limit is a 400 that has cancelled nothing.
	var runIDs []string
	var token []byte
	for {
		page, err := a.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: a.opts.Namespace, Query: query, NextPageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		for _, ex := range page.GetExecutions() {
			runID := ex.GetExecution().GetWorkflowId()
			if cond != nil {
				ok, err := a.triggerMatches(ctx, cond, ex)
				if err != nil {
					return nil, &api.InputError{Msg: fmt.Sprintf("if: run %s: %v", runID, err)}
				}
				if !ok {
					continue
				}
			}
			runIDs = append(runIDs, runID)
		}
		if token = page.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	var mu sync.Mutex
	g := fanOut()
	for _, runID := range runIDs {
		g.Go(func() error {
			if err := a.requestCancel(ctx, runID); err != nil {
				return fmt.Errorf("cancel run %s: %w", runID, err)
			}
			mu.Lock()
			out.Cancelled++
			mu.Unlock()
			return nil
		})
	}
	return out, g.Wait()
}

// triggerMatches evaluates cond over the triggering event of a listed run; an event that
// has expired cannot match. The error is only an evaluation over the cost limit.
func (a *App) triggerMatches(ctx context.Context, cond *expr.Program, ex *workflowpb.WorkflowExecutionInfo) (bool, error) {
	var eventID string
	if p := ex.GetSearchAttributes().GetIndexedFields()[SAEventID.GetName()]; p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &eventID)
	}
	rec, err := a.logged(ctx, eventID)
	if err != nil {
		return false, nil
	}
	var m map[string]any
	_ = json.Unmarshal(rec.Event, &m)
	return cond.Matches(map[string]any{"event": m})
}
