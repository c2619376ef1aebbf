package adapter

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/workflows"
)

// RunTrace is a run with its step timeline, read from the run's history.
func (a *App) RunTrace(ctx context.Context, id string, withOutput bool) (*api.RunTrace, error) {
	run, err := a.RunV2(ctx, id)
	if err != nil {
		return nil, err
	}
	if !withOutput {
		run.Output = nil
	}
	tr := &api.RunTrace{Run: *run, Steps: []api.TraceStep{}}
	if run.Status == api.V2Skipped { // never ran: no history of steps
		return tr, nil
	}
	events, err := a.history(ctx, id)
	if err != nil {
		return nil, err
	}
	tr.Steps = workflows.Trace(events, a.dc, withOutput)
	return tr, nil
}

// history is a run's whole history, as recorded so far.
func (a *App) history(ctx context.Context, id string) ([]*historypb.HistoryEvent, error) {
	it := a.temporal.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("read the history of run %s: %w", id, err)
		}
		events = append(events, ev)
	}
	return events, nil
}

// startEvent is the first event of a run's history, its start (as a one-event slice).
func (a *App) startEvent(ctx context.Context, id string) ([]*historypb.HistoryEvent, error) {
	it := a.temporal.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return nil, nil
	}
	ev, err := it.Next()
	if err != nil {
		return nil, fmt.Errorf("read the history of run %s: %w", id, err)
	}
	return []*historypb.HistoryEvent{ev}, nil
}
