package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/expr"
)

// deliver hands each event to the waits and cancel rules it satisfies: a wait is claimed
// atomically, then its run is signalled (with the event's id as request id, so a retried
// delivery is one signal) or, for a cancel rule, cancelled.
func (a *App) deliver(ctx context.Context, evs []*accepted) error {
	qs := make([]flowcontrol.Query, len(evs))
	for i, ev := range evs {
		qs[i] = flowcontrol.Query{Name: ev.ev.Name, Lookup: func(path string) (any, bool) { return flowcontrol.Lookup(ev.asMap(), path) }}
	}
	cands, err := a.waits.CandidatesMany(ctx, qs)
	if err != nil {
		return err
	}
	for i, ev := range evs {
		for _, w := range cands[i] {
			if w.Created > ev.received.UnixMilli() || (w.Kind == flowcontrol.KindCancel && w.TriggerID == ev.internal.String()) {
				continue // the wait began after this event arrived, or it is the run's own trigger
			}
			if !a.waitIf(w, ev) {
				continue
			}
			outcome, _, err := a.waits.Claim(ctx, w, string(ev.norm))
			if err != nil {
				return err
			}
			if outcome != flowcontrol.Claimed {
				continue
			}
			if err := a.resume(ctx, w, ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitIf evaluates a wait's If over the run's trigger (event) and the candidate (async).
func (a *App) waitIf(w flowcontrol.Wait, ev *accepted) bool {
	if w.If == "" {
		return true
	}
	p, ok := a.exprs.Load(w.If)
	if !ok {
		prog, err := expr.CompileBool(w.If)
		if err != nil {
			a.log.Warn("invalid wait condition", "wait", w.ID, "if", w.If, "err", err)
			return false
		}
		p, _ = a.exprs.LoadOrStore(w.If, prog)
	}
	var trigger map[string]any
	if len(w.Trigger) > 0 {
		_ = json.Unmarshal(w.Trigger, &trigger)
	}
	return p.(*expr.Program).Match(map[string]any{"event": trigger, "async": ev.asMap()})
}

func (a *App) resume(ctx context.Context, w flowcontrol.Wait, ev *accepted) error {
	var err error
	switch w.Kind {
	case flowcontrol.KindCancel:
		err = a.requestCancel(ctx, w.WorkflowID)
	default:
		var input *common.Payloads
		if input, err = converter.GetDefaultDataConverter().ToPayloads(ev.norm); err != nil {
			return err
		}
		_, err = a.temporal.WorkflowService().SignalWorkflowExecution(ctx, &workflowservice.SignalWorkflowExecutionRequest{
			Namespace:         a.opts.Namespace,
			WorkflowExecution: &common.WorkflowExecution{WorkflowId: w.WorkflowID},
			SignalName:        w.Signal,
			Input:             input,
			Identity:          "tempest-ingest",
			RequestId:         ev.internal.String() + "/" + w.ID,
		})
	}
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) { // a run that has ended needs nothing
		return fmt.Errorf("deliver event %s to wait %s: %w", ev.internal, w.ID, err)
	}
	a.metrics.WaitsResumed.WithLabelValues(w.Kind).Inc()
	return nil
}
