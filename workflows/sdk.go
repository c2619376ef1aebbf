package workflows

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tempestrun/tempest/activities"
	"github.com/tempestrun/tempest/internal/sdkhttp"
)

// callPrefix starts the step id of every call to an SDK app (the trace lists the steps the
// app reported instead).
const callPrefix = "call the app: "

// maxSDKCallOutput bounds what one call to an SDK app returns (the steps it ran, in one
// call with checkpointing), as Inngest bounds a run's state; larger results are kept in Redis
// and referenced from the history, as every payload over 256 KiB.
const maxSDKCallOutput = 32 << 20

// maxSDKSteps is the most steps one run of an SDK function may take, as Inngest's.
const maxSDKSteps = 1000

// SDK is the handler of every function an Inngest SDK app serves over HTTP. It drives the
// app as Inngest's executor does: each call to the app is a step of the run (memoized in
// the history, retried with Inngest's attempt numbers); the ops the app answers become
// their Temporal counterparts (a step's result stored and sent back on the next call, a
// timer for Sleep, the wait index for WaitForEvent, a child run for InvokeFunction,
// parallel calls for planned steps) until the app reports the run complete.
func SDK(ctx context.Context, call Call) (any, error) {
	st, err := stateFrom(ctx)
	if err != nil {
		return nil, err
	}
	r := &sdkRun{acts: st.acts, in: call.Input, steps: map[string]json.RawMessage{}, version: -1}
	return r.run(ctx)
}

// sdkRun is what the app is told on every call: the memoized steps (by hashed id) and the
// order they completed in.
type sdkRun struct {
	acts    *activities.Activities
	in      RunInput
	steps   map[string]json.RawMessage
	stack   []string
	version int
	// forcePlan asks the app to plan steps instead of running one inline, while a
	// fan-out of parallel steps is outstanding.
	forcePlan bool
	last      string // the label of the last step done, for the next call's name
	calls     int    // discovery calls made, the qi_id of the next
}

// errComplete carries the run's output from a nested op back to the loop.
type errComplete struct{ data json.RawMessage }

func (e *errComplete) Error() string { return "the run completed" }

func (r *sdkRun) run(ctx context.Context) (any, error) {
	for {
		name := callPrefix + "first step"
		if r.last != "" {
			name = callPrefix + "next step after " + r.last
		}
		out, err := r.call(ctx, "step", name)
		r.forcePlan = false
		if err == nil {
			err = r.handle(ctx, out)
		}
		var done *errComplete
		if errors.As(err, &done) {
			return done.data, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// call runs one call to the app as a step named name.
func (r *sdkRun) call(ctx context.Context, stepID, name string) (activities.CallOutcome, error) {
	if len(r.stack) >= maxSDKSteps {
		return activities.CallOutcome{}, &NonRetriableError{Err: fmt.Errorf("the run took %d steps, the most a run may take", maxSDKSteps)}
	}
	events := r.in.Events
	first := json.RawMessage(`{}`)
	if len(events) > 0 {
		first = events[0]
	}
	req := sdkhttp.Request{
		Event: first, Events: events, Steps: maps.Clone(r.steps), Defers: map[string]any{}, Version: r.version,
		Ctx: sdkhttp.Context{
			RunID: r.in.RunID, MaxAttempts: r.in.Retries + 1, StepID: stepID,
			Stack:                     sdkhttp.Stack{Stack: slices.Clone(r.stack), Current: len(r.stack)},
			DisableImmediateExecution: r.forcePlan,
		},
	}
	if req.Ctx.Stack.Stack == nil {
		req.Ctx.Stack.Stack = []string{}
	}
	if stepID == "step" && !r.forcePlan {
		// fn_id and qi_id turn on the JS SDK's checkpointing: consecutive steps run in this
		// one call, each reported to /v1/checkpoint before the call answers.
		r.calls++
		req.Ctx.FnID, req.Ctx.QIID = sdkhttp.FunctionUUID(r.in.FunctionID), fmt.Sprint(r.calls)
	}
	fnID, callApp := r.in.FunctionID, r.acts.CallApp
	raw, err := Run(ctx, name, func(actx context.Context) (json.RawMessage, error) {
		// One call returns every step it ran (each at most MaxStepOutput, checked where
		// they are checkpointed): its outcome is bounded as Inngest bounds a run's state.
		allowOutput(actx, maxSDKCallOutput)
		req := req
		req.Ctx.Attempt = StepAttempt(actx)
		req.Ctx.GenerationID = req.Ctx.Attempt + 1
		return callApp(actx, fnID, stepID, req)
	})
	if err != nil {
		return activities.CallOutcome{}, err
	}
	var out activities.CallOutcome
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, err
	}
	if r.version == -1 && out.Version > 0 {
		r.version = out.Version
	}
	return out, nil
}

// handle applies a call's outcome: results are stored, async ops are carried out (several
// at once as parallel branches); completion comes back as *errComplete.
func (r *sdkRun) handle(ctx context.Context, out activities.CallOutcome) error {
	if out.Status != 206 {
		return &errComplete{data: sdkhttp.OrNull(out.Data)}
	}
	var async []sdkhttp.Op
	var complete *errComplete
	for _, op := range out.Ops {
		if _, done := r.steps[op.ID]; done && op.Op != sdkhttp.OpRunComplete {
			continue // already stored (checkpointed, or reported twice)
		}
		if memo, ok := op.Memo(); ok {
			r.store(op, memo)
			continue
		}
		switch op.Op {
		case sdkhttp.OpRunComplete:
			complete = &errComplete{data: sdkhttp.OrNull(op.Data)}
		case sdkhttp.OpNone:
		case sdkhttp.OpSleep, sdkhttp.OpWaitForEvent, sdkhttp.OpInvokeFunction, sdkhttp.OpStepPlanned:
			async = append(async, op)
		default:
			return &NonRetriableError{Err: fmt.Errorf("the app asked for %s (step %q), which Tempest does not run yet", op.Op, op.Label())}
		}
	}
	if complete != nil {
		return complete
	}
	// Waits first: a wait must be registered before sibling work can send its event.
	waitsFirst := func(o sdkhttp.Op) int {
		if o.Op == sdkhttp.OpWaitForEvent {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(async, func(a, b sdkhttp.Op) int { return cmp.Compare(waitsFirst(a), waitsFirst(b)) })
	switch len(async) {
	case 0:
		return nil
	case 1:
		return r.do(ctx, async[0])
	}
	r.forcePlan = true
	branches := make([]func(context.Context) (any, error), len(async))
	for i, op := range async {
		branches[i] = func(bctx context.Context) (any, error) { return nil, r.do(bctx, op) }
	}
	results, err := Parallel(ctx, branches...)
	if err != nil {
		return err
	}
	for _, res := range results {
		if res.Error != nil {
			return res.Error
		}
	}
	return nil
}

// store memoizes a step's result for the next calls.
func (r *sdkRun) store(op sdkhttp.Op, memo json.RawMessage) {
	if _, dup := r.steps[op.ID]; !dup {
		r.stack = append(r.stack, op.ID)
	}
	r.steps[op.ID] = memo
	r.last = op.Label()
}

// opOpts are the options of the async ops (JS spells the sleep duration and the awaited
// event in name, Go in opts).
type opOpts struct {
	Duration   string `json:"duration"`
	Event      string `json:"event"`
	Timeout    string `json:"timeout"`
	If         string `json:"if"`
	FunctionID string `json:"function_id"`
	Payload    struct {
		Data map[string]any `json:"data"`
	} `json:"payload"`
}

// do carries out one async op.
func (r *sdkRun) do(ctx context.Context, op sdkhttp.Op) error {
	var o opOpts
	if len(op.Opts) > 0 && string(op.Opts) != "null" {
		if err := json.Unmarshal(op.Opts, &o); err != nil {
			return &NonRetriableError{Err: fmt.Errorf("step %q: the app sent options Tempest cannot read: %v", op.Label(), err)}
		}
	}
	label := op.Label()
	switch op.Op {
	case sdkhttp.OpStepPlanned:
		out, err := r.call(ctx, op.ID, callPrefix+label)
		if err != nil {
			return err
		}
		return r.handle(ctx, out)
	case sdkhttp.OpSleep:
		d, err := r.sleepFor(ctx, op, o)
		if err != nil {
			return err
		}
		if err := Sleep(ctx, label, d); err != nil {
			return err
		}
		r.store(op, json.RawMessage("null"))
	case sdkhttp.OpWaitForEvent:
		event := cmp.Or(o.Event, op.Name)
		var got json.RawMessage
		if o.Timeout != "" {
			timeout, err := sdkhttp.ParseDuration(o.Timeout)
			if err != nil {
				return &NonRetriableError{Err: fmt.Errorf("step %q: wait timeout: %v", label, err)}
			}
			got, err = WaitForEvent(ctx, label, WaitOpts{Event: event, Timeout: timeout, If: o.If})
			if err != nil && !errors.Is(err, ErrEventNotReceived) {
				return err
			}
		}
		r.store(op, sdkhttp.OrNull(got))
	case sdkhttp.OpInvokeFunction:
		var timeout time.Duration
		if o.Timeout != "" {
			d, err := sdkhttp.ParseDuration(o.Timeout)
			if err != nil {
				return &NonRetriableError{Err: fmt.Errorf("step %q: invoke timeout: %v", label, err)}
			}
			timeout = d
		}
		out, err := Invoke(ctx, label, InvokeOpts{FunctionID: o.FunctionID, Data: o.Payload.Data, Timeout: timeout})
		var se *StepError
		switch {
		case errors.As(err, &se):
			name := se.Name
			if name == "InvokeTimeout" {
				name = "InngestInvokeTimeoutError"
			}
			e, _ := json.Marshal(sdkhttp.ErrorBody{Name: name, Message: se.Message})
			r.store(op, sdkhttp.Wrap("error", e))
		case err != nil:
			return err
		default:
			r.store(op, sdkhttp.Wrap("data", out))
		}
	}
	return nil
}

// sleepFor reads a Sleep op: a duration ("1h30m") or, for strings of 10 characters or
// more that parse as one, a date to sleep until.
func (r *sdkRun) sleepFor(ctx context.Context, op sdkhttp.Op, o opOpts) (time.Duration, error) {
	s := cmp.Or(o.Duration, op.Name)
	if len(s) >= 10 {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			now, err := Now(ctx)
			if err != nil {
				return 0, err
			}
			return max(t.Sub(now), time.Millisecond), nil
		}
	}
	d, err := sdkhttp.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, &NonRetriableError{Err: fmt.Errorf("step %q: sleep: %v", op.Label(), err)}
	}
	return max(d, time.Millisecond), nil
}
