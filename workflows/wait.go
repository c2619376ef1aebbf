package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/activities"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/expr"
)

// ErrEventNotReceived is returned by WaitForEvent when the timeout passes first.
var ErrEventNotReceived = errors.New("event not received")

// maxWaitTimeout bounds a wait (and a cancel rule), as Inngest does.
const maxWaitTimeout = 366 * 24 * time.Hour

// defaultCancelTimeout is how long a cancel rule applies when it sets no timeout.
const defaultCancelTimeout = 365 * 24 * time.Hour

// WaitOpts says which event a wait takes.
type WaitOpts struct {
	// Event is the name of the event to wait for. Required.
	Event string
	// Timeout is how long to wait: more than 0, at most 366 days. Required.
	Timeout time.Duration
	// If is CEL over `event` (this run's triggering event) and `async` (the candidate).
	If string
	// Match is a path such as "data.userId": shorthand for event.data.userId == async.data.userId.
	// Waits with Match are indexed by the value, so delivering an event is a lookup.
	Match string
}

// CancelRule cancels a run when a matching event arrives (cancelOn). Fields as in WaitOpts;
// Timeout 0 means one year.
type CancelRule struct {
	Event   string        `json:"event"`
	If      string        `json:"if,omitempty"`
	Match   string        `json:"match,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
}

// ValidateWait checks the options of a wait or a cancel rule; the error says what to fix.
func ValidateWait(event, ifExpr, match string, timeout time.Duration, needTimeout bool) error {
	switch {
	case event == "":
		return errors.New("event name is required")
	case ifExpr != "" && match != "":
		return errors.New("set If or Match, not both")
	case needTimeout && timeout <= 0:
		return errors.New("timeout must be more than 0")
	case timeout < 0 || timeout > maxWaitTimeout:
		return fmt.Errorf("timeout %s is out of range (0 to 366 days)", timeout)
	case strings.HasPrefix(match, "event.") || strings.HasPrefix(match, "async."):
		return fmt.Errorf("match %q: give the path within the event, like \"data.userId\"", match)
	}
	if ifExpr != "" {
		if _, err := expr.CompileBool(ifExpr); err != nil {
			return err
		}
	}
	return nil
}

// triggerMap is the run's triggering event, decoded.
func (st *runState) triggerMap() map[string]any {
	var m map[string]any
	if len(st.in.Events) > 0 {
		_ = json.Unmarshal(st.in.Events[0], &m)
	}
	return m
}

// waitSignalPrefix + the step id is the signal that resumes a wait for an event.
const waitSignalPrefix = "tempest/wait/"

func (st *runState) newWait(kind, id, event, ifExpr, match string, timeout time.Duration) flowcontrol.Wait {
	w := flowcontrol.Wait{
		ID: st.in.RunID + "/" + id, Kind: kind, Event: event, WorkflowID: workflow.GetInfo(st.wctx).WorkflowExecution.ID,
		If: ifExpr, TriggerID: st.in.EventID,
		Expires: workflow.GetInfo(st.wctx).WorkflowStartTime.Add(timeout).UnixMilli(),
	}
	if kind == flowcontrol.KindWait {
		w.Signal = waitSignalPrefix + id
		w.Expires = workflow.Now(st.wctx).Add(timeout).UnixMilli()
	}
	if match != "" {
		w.MatchPath = match
		w.MatchValue, _ = flowcontrol.Lookup(st.triggerMap(), match)
	}
	if ifExpr != "" && len(st.in.Events) > 0 {
		w.Trigger = st.in.Events[0]
	}
	return w
}

func (st *runState) waitLA(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: time.Hour,
		StartToCloseTimeout:    30 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumInterval: 10 * time.Second},
		Summary:                summary,
	})
}

// WaitForEvent pauses the run until an event named opts.Event that matches arrives after
// the wait began, or until the timeout (then ErrEventNotReceived, not a failure). The first
// matching event wins; one event never resumes a wait twice.
func WaitForEvent(ctx context.Context, id string, opts WaitOpts) (json.RawMessage, error) {
	st, err := stateFrom(ctx)
	if err != nil {
		return nil, err
	}
	uid := st.uniqueID(id)
	if m, ok := st.memo[uid]; ok {
		if m.err == nil && m.data == nil {
			return nil, ErrEventNotReceived
		}
		return m.result()
	}
	if err := st.checkDeadline(); err != nil {
		return nil, err
	}
	if err := ValidateWait(opts.Event, opts.If, opts.Match, opts.Timeout, true); err != nil {
		return nil, &NonRetriableError{Err: fmt.Errorf("step %q: wait for event: %w", uid, err)}
	}
	w := st.newWait(flowcontrol.KindWait, uid, opts.Event, opts.If, opts.Match, opts.Timeout)
	// Listen before registering, so no signal can come before the channel exists.
	ch := workflow.GetSignalChannel(st.wctx, w.Signal)
	rctx := st.waitLA(st.wctx, "wait for "+opts.Event+" ("+uid+")")
	if err := workflow.ExecuteLocalActivity(rctx, st.acts.RegisterWaits, []flowcontrol.Wait{w}).Get(rctx, nil); err != nil {
		return nil, err
	}
	var event json.RawMessage
	received := false
	tctx, cancelTimer := workflow.WithCancel(st.wctx)
	sel := workflow.NewSelector(st.wctx)
	sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(st.wctx, &event)
		received = true
		cancelTimer()
	})
	timer := workflow.NewTimerWithOptions(tctx, opts.Timeout, workflow.TimerOptions{Summary: "wait for " + opts.Event + " timeout (" + uid + ")"})
	sel.AddFuture(timer, func(workflow.Future) {})
	sel.Select(st.wctx)
	if !received {
		if st.wctx.Err() != nil {
			return nil, st.wctx.Err()
		}
		// The timeout and an event may race: the claim decides, and a lost race hands over
		// the event that won.
		cctx := st.waitLA(st.wctx, "wait for "+opts.Event+" timed out ("+uid+")")
		var res []activities.ClaimResult
		if err := workflow.ExecuteLocalActivity(cctx, st.acts.ClaimWait, []flowcontrol.Wait{w}, "~timeout").Get(cctx, &res); err != nil {
			return nil, err
		}
		if res[0].Outcome == flowcontrol.AlreadyClaimed && res[0].Prev != "~timeout" {
			event = json.RawMessage(res[0].Prev)
			received = true
		}
	}
	if !received {
		st.memo[uid] = memoEntry{}
		return nil, ErrEventNotReceived
	}
	st.memo[uid] = memoEntry{data: event}
	return event, nil
}

// CancelWaits are the index entries of a run's cancelOn rules. They are a pure function of
// the run's input, so the ingest path registers them before the run starts (a run is
// cancellable from the moment its trigger is acknowledged, even while it waits for a
// throttle slot) and the run registers and releases the same entries.
func CancelWaits(in RunInput) []flowcontrol.Wait {
	var trigger map[string]any
	if len(in.Events) > 0 {
		_ = json.Unmarshal(in.Events[0], &trigger)
	}
	waits := make([]flowcontrol.Wait, len(in.Cancel))
	for i, r := range in.Cancel {
		timeout := r.Timeout
		if timeout == 0 {
			timeout = defaultCancelTimeout
		}
		w := flowcontrol.Wait{
			ID: in.RunID + "/cancel/" + strconv.Itoa(i), Kind: flowcontrol.KindCancel, Event: r.Event, WorkflowID: in.RunID,
			If: r.If, TriggerID: in.EventID, Expires: time.UnixMilli(in.ScheduledAt).Add(timeout).UnixMilli(),
		}
		if r.Match != "" {
			w.MatchPath = r.Match
			w.MatchValue, _ = flowcontrol.Lookup(trigger, r.Match)
		}
		if r.If != "" && len(in.Events) > 0 {
			w.Trigger = in.Events[0]
		}
		waits[i] = w
	}
	return waits
}

// cancelWaits are the run's cancel entries; a run started without ScheduledAt counts its rules' timeouts from its workflow start.
func (st *runState) cancelWaits() []flowcontrol.Wait {
	in := st.in
	if in.ScheduledAt == 0 {
		in.ScheduledAt = workflow.GetInfo(st.wctx).WorkflowStartTime.UnixMilli()
	}
	return CancelWaits(in)
}

func (st *runState) registerCancelRules() error {
	if len(st.in.Cancel) == 0 {
		return nil
	}
	ctx := st.waitLA(st.wctx, "register cancelOn rules")
	return workflow.ExecuteLocalActivity(ctx, st.acts.RegisterWaits, st.cancelWaits()).Get(ctx, nil)
}

func (st *runState) releaseCancelRules(ctx workflow.Context) error {
	if len(st.in.Cancel) == 0 {
		return nil
	}
	ctx = st.waitLA(ctx, "release cancelOn rules")
	return workflow.ExecuteLocalActivity(ctx, st.acts.ClaimWait, st.cancelWaits(), "~done").Get(ctx, nil)
}
