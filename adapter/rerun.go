package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/oklog/ulid/v2"

	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/ids"
	"github.com/tempestrun/tempest/workflows"
)

// Rerun starts a new run of a run's function with the run's events: the function as it is
// registered now (a rerun after a fix runs the fixed code), through its singleton, throttle
// and concurrency like any run. With req.FromStep, the original's steps before that one are
// not executed again: the new run reuses their recorded results.
func (a *App) Rerun(ctx context.Context, id string, req api.RerunRequest) (*api.Rerun, error) {
	runID := ids.NewEventID(time.Now()).String()
	return a.rerun(ctx, id, runID, "", req)
}

// rerun starts the rerun of id as runID, for a replay when replayID is set (a replay
// derives runID from the original, so a second start of the same replay is rejected).
func (a *App) rerun(ctx context.Context, id, runID, replayID string, req api.RerunRequest) (*api.Rerun, error) {
	var events []*historypb.HistoryEvent
	var err error
	if req.FromStep != nil {
		events, err = a.history(ctx, id)
	} else { // the start is enough
		events, err = a.startEvent(ctx, id)
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		if _, err := a.skipped(ctx, id); err == nil {
			return nil, &api.InputError{Msg: fmt.Sprintf("run %s was skipped (singleton): it has no recorded run to rerun; send its event again", id)}
		}
		return nil, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	orig, err := a.runInput(events)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", id, err)
	}
	f := a.routes.Load().bySlug[orig.FunctionID]
	if f == nil {
		return nil, &api.InputError{Msg: fmt.Sprintf("function %s of run %s is not registered in this environment any more: register it again to rerun its runs", orig.FunctionID, id)}
	}
	if req.FromStep != nil && f.url != "" {
		return nil, &api.InputError{Msg: fmt.Sprintf("function %s is served by an Inngest SDK app: its runs rerun from the start only (leave out from_step)", f.slug)}
	}
	out := &api.Rerun{RunID: runID, RerunOf: id, Reused: []string{}}
	c := &candidate{fn: f, run: runID, rerunOf: id, replayID: replayID}
	if req.FromStep != nil {
		c.fromStep = &workflows.FromStep{ID: req.FromStep.StepID, Input: req.FromStep.Input}
		if c.reused, err = reusable(workflows.Trace(events, a.dc, true), id, req.FromStep.StepID); err != nil {
			return nil, err
		}
		for _, m := range c.reused {
			out.Reused = append(out.Reused, m.ID)
		}
	}
	for i, raw := range orig.Events {
		ev := &accepted{norm: raw}
		if err := json.Unmarshal(raw, &ev.ev); err != nil {
			return nil, fmt.Errorf("run %s: event %d: %w", id, i, err)
		}
		ev.internal, _ = ulid.ParseStrict(ev.ev.ID)
		if i == 0 {
			ev.internal, _ = ulid.ParseStrict(orig.EventID)
		}
		c.evs = append(c.evs, ev)
	}
	if len(c.evs) == 0 {
		return nil, &api.InputError{Msg: fmt.Sprintf("run %s has no events to rerun with", id)}
	}
	if err := a.startAdmitted(ctx, []*candidate{c}); err != nil {
		return nil, err
	}
	if c.listed == "" {
		return nil, &api.InputError{Msg: fmt.Sprintf("the rerun of %s did not start: %s", id, c.dropped)}
	}
	return out, nil
}

// runInput is the input a run started with, from its history's first event.
func (a *App) runInput(events []*historypb.HistoryEvent) (workflows.RunInput, error) {
	var in workflows.RunInput
	if len(events) == 0 || events[0].GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED {
		return in, errors.New("its history does not begin with its start")
	}
	if events[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName() == skippedWorkflow {
		return in, &api.InputError{Msg: "the run was skipped (singleton): it has no recorded run to rerun; send its event again"}
	}
	err := a.dc.FromPayloads(events[0].GetWorkflowExecutionStartedEventAttributes().GetInput(), &in)
	return in, err
}

// reusable are the recorded outcomes of the steps the original reached before stepID, in
// its order; a step that had not ended there runs again.
func reusable(trace []api.TraceStep, runID, stepID string) ([]workflows.StepMemo, error) {
	var memo []workflows.StepMemo
	var known []string
	for _, s := range trace {
		if s.Kind == api.StepRetry {
			continue
		}
		if s.ID == stepID {
			return memo, nil
		}
		known = append(known, s.ID)
		m := workflows.StepMemo{ID: s.ID}
		switch {
		case s.Status == api.StepCompleted && s.Kind == api.StepSleep:
			m.Data = json.RawMessage("null")
		case s.Status == api.StepCompleted:
			m.Data = s.Output
			if m.Data == nil {
				m.Data = json.RawMessage("null")
			}
		case s.Status == api.StepTimedOut: // a wait without its event: no data, no error
		case s.Status == api.StepFailed && s.Error != nil:
			m.Error = &workflows.StepError{StepID: s.ID, Name: s.Error.Name, Message: s.Error.Message}
		default:
			continue
		}
		memo = append(memo, m)
	}
	list := "it has no steps"
	if len(known) > 0 {
		list = "its steps are " + strings.Join(known, ", ")
	}
	return nil, &api.InputError{Msg: fmt.Sprintf("from_step: run %s has no step %q (%s)", runID, stepID, list)}
}

// reruns lists the runs that rerun id (as visibility has them: a few seconds behind).
func (a *App) reruns(ctx context.Context, id string) ([]string, error) {
	page, err := a.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: a.opts.Namespace, PageSize: 100,
		Query: fmt.Sprintf("%s = '%s'", SARerunOf.GetName(), id),
	})
	if err != nil {
		return nil, fmt.Errorf("list the reruns of %s: %w", id, err)
	}
	var out []string
	for _, ex := range page.GetExecutions() {
		out = append(out, ex.GetExecution().GetWorkflowId())
	}
	return out, nil
}
