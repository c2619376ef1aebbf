package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// EventFunctionInvoked names the event an invoked run receives.
const EventFunctionInvoked = "inngest/function.invoked"

// Search attributes every run carries (set by the ingest path, and here for invoked runs).
var (
	SAFunctionID = temporal.NewSearchAttributeKeyKeyword("TempestFunctionID")
	SAEventID    = temporal.NewSearchAttributeKeyKeyword("TempestEventID")
	SAEventName  = temporal.NewSearchAttributeKeyKeyword("TempestEventName")
	// SARerunOf is set on a rerun (and a replayed run): the run it reruns.
	SARerunOf = temporal.NewSearchAttributeKeyKeyword("TempestRerunOf")
	// SAReplayID is set on the runs a bulk replay started.
	SAReplayID = temporal.NewSearchAttributeKeyKeyword("TempestReplayID")
)

// InvokeOpts says which function to run and with what.
type InvokeOpts struct {
	// FunctionID is the target's fully qualified id ("<app>-<fn>") or its id in this app.
	FunctionID string
	// Data of the inngest/function.invoked event the target receives.
	Data map[string]any
	// Timeout stops waiting after this long (the invoked run goes on); 0 waits for ever.
	Timeout time.Duration
}

// Invoke runs another function as a child workflow, as a step named id, and returns its
// output. The child's failure comes back as a *StepError (not retried: the child has its own
// retries); so does a timeout.
func Invoke(ctx context.Context, id string, opts InvokeOpts) (json.RawMessage, error) {
	st, err := stateFrom(ctx)
	if err != nil {
		return nil, err
	}
	uid := st.uniqueID(id)
	if m, ok := st.memo[uid]; ok {
		return m.result()
	}
	if err := st.checkDeadline(); err != nil {
		return nil, err
	}
	fail := func(name, msg string) (json.RawMessage, error) {
		se := &StepError{StepID: uid, Name: name, Message: msg}
		st.memo[uid] = memoEntry{err: se}
		return nil, se
	}
	target, ok := st.acts.Resolve(opts.FunctionID)
	if !ok {
		return fail("InvokeError", fmt.Sprintf("function %q not found", opts.FunctionID))
	}
	born := workflow.GetInfo(st.wctx).WorkflowStartTime
	eventID := DeriveID(born, st.in.RunID, uid, "invoke-event")
	childID := DeriveID(born, st.in.RunID, uid, "invoke-run").String()
	correlation := st.in.RunID + "." + uid
	data := map[string]any{}
	for k, v := range opts.Data {
		data[k] = v
	}
	data["_inngest"] = map[string]any{"fn_id": target.Slug, "correlation_id": correlation, "source_fn_id": st.in.FunctionID, "name": uid}
	event, err := json.Marshal(map[string]any{"name": EventFunctionInvoked, "id": eventID.String(),
		"ts": workflow.Now(st.wctx).UnixMilli(), "data": data, "user": map[string]any{}})
	if err != nil {
		return fail("InvokeError", fmt.Sprintf("invoke data is not JSON-encodable: %v", err))
	}
	cctx := workflow.WithChildOptions(st.wctx, workflow.ChildWorkflowOptions{
		WorkflowID:            childID,
		TaskQueue:             target.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		// The invoked run outlives its caller (after a timeout, say); cancelling the caller
		// while it waits cancels the invoked run through the context.
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		StaticSummary:     fmt.Sprintf("%s ← %s (invoked by %s, step %s)", target.Slug, EventFunctionInvoked, st.in.RunID, uid),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			SAFunctionID.ValueSet(target.Slug), SAEventID.ValueSet(eventID.String()), SAEventName.ValueSet(EventFunctionInvoked)),
	})
	child := workflow.ExecuteChildWorkflow(cctx, target.Slug, RunInput{
		FunctionID: target.Slug, RunID: childID, Events: []json.RawMessage{event}, Retries: target.Retries, CorrelationID: correlation,
	})
	var out json.RawMessage
	if opts.Timeout > 0 {
		timedOut := false
		tctx, cancelTimer := workflow.WithCancel(st.wctx)
		sel := workflow.NewSelector(st.wctx)
		sel.AddFuture(child, func(f workflow.Future) { err = f.Get(st.wctx, &out); cancelTimer() })
		sel.AddFuture(workflow.NewTimerWithOptions(tctx, opts.Timeout, workflow.TimerOptions{Summary: "invoke " + uid + " timeout"}),
			func(f workflow.Future) {
				if f.Get(tctx, nil) == nil {
					timedOut = true
				}
			})
		sel.Select(st.wctx)
		if timedOut {
			return fail("InvokeTimeout", fmt.Sprintf("invoked function %s did not finish within %s", target.Slug, opts.Timeout))
		}
	} else {
		err = child.Get(st.wctx, &out)
	}
	if err != nil {
		if st.wctx.Err() != nil {
			return nil, err
		}
		name, msg := Failure(err)
		if name == "Cancelled" {
			msg = "the invoked run was cancelled"
		}
		return fail(name, msg)
	}
	st.memo[uid] = memoEntry{data: out}
	return out, nil
}
