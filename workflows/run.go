// Package workflows holds the Temporal workflow that runs one Tempest function run, and the
// machinery the public step packages bind to: memoized steps with per-step retries, sleeps,
// waits for events, invokes, parallel branches, timeouts, cancellation and system events.
package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/activities"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/metrics"
)

// RunInput is the workflow input of a run. It carries everything the run needs, so a run
// that waits in Temporal depends on nothing that lives elsewhere.
type RunInput struct {
	FunctionID string `json:"function_id"`
	RunID      string `json:"run_id"`
	// Events of the run; the first is the triggering event.
	Events []json.RawMessage `json:"events"`
	// Retries per step (and for the handler body); attempts = Retries + 1.
	Retries int `json:"retries"`
	// CorrelationID links a run started by step.Invoke to its caller.
	CorrelationID string `json:"correlation_id,omitempty"`
	// EventID is the internal id of the triggering event.
	EventID string `json:"event_id,omitempty"`
	// Cancel lists the function's cancelOn rules, as they were when the run started.
	Cancel []CancelRule `json:"cancel,omitempty"`
	// ScheduledAt is when the run was created (unix ms), the origin of StartTimeout.
	ScheduledAt int64 `json:"scheduled_at,omitempty"`
	// StartTimeout cancels the run if it has not started this long after ScheduledAt;
	// FinishTimeout cancels it this long after it started (at the next step boundary).
	StartTimeout  time.Duration `json:"start_timeout,omitempty"`
	FinishTimeout time.Duration `json:"finish_timeout,omitempty"`
	// Singleton is the Redis key of the singleton lock the run holds, released at its end.
	Singleton string `json:"singleton,omitempty"`
	// Concurrency lists the limits every step of the run takes a lease on while it executes.
	Concurrency []flowcontrol.Lease `json:"concurrency,omitempty"`
	// Priority is the run's priority factor in seconds: it moves the run ahead of runs
	// that waited up to that much longer for a concurrency slot.
	Priority int `json:"priority,omitempty"`
	// Throttle is checked again where the run begins (its scheduled slot only set its
	// StartDelay): a backlog never begins faster than the throttle allows.
	Throttle *flowcontrol.Gate `json:"throttle,omitempty"`
	// RerunOf is the run this one reruns; Reused are the recorded results of the original's
	// steps before the one it reruns from (they are not executed again), and FromStep
	// names that step and the input its body reads with StepInput.
	RerunOf  string     `json:"rerun_of,omitempty"`
	Reused   []StepMemo `json:"reused,omitempty"`
	FromStep *FromStep  `json:"from_step,omitempty"`
}

// StepMemo is the recorded outcome of a step: its result (JSON; absent for a wait that
// timed out) or its error after the last attempt.
type StepMemo struct {
	ID    string          `json:"id"`
	Data  json.RawMessage `json:"data,omitempty"`
	Error *StepError      `json:"error,omitempty"`
}

// FromStep is where a rerun starts executing again.
type FromStep struct {
	ID    string          `json:"step_id"`
	Input json.RawMessage `json:"input,omitempty"`
}

// Call is what a handler invocation receives besides its context.
type Call struct {
	Input   RunInput
	Attempt int // of the handler body, 0-based
}

// Handler runs the user's function body. It runs as workflow code: deterministic, with all
// side effects inside steps.
type Handler func(ctx context.Context, call Call) (any, error)

// Workflow returns the workflow function of a Tempest function whose runs use acts.
func Workflow(h Handler, acts *activities.Activities) func(workflow.Context, RunInput) (any, error) {
	return func(wctx workflow.Context, in RunInput) (any, error) {
		st := &runState{wctx: wctx, run: &run{in: in, acts: acts, memo: map[string]memoEntry{}}}
		for _, m := range in.Reused { // a rerun from a step: the steps before it are done
			st.memo[m.ID] = memoEntry{data: m.Data, err: m.Error}
		}
		out, err := st.execute(h)
		// What the run holds is released whatever happened (the run's context may be
		// cancelled, so this runs disconnected from it).
		dctx, _ := workflow.NewDisconnectedContext(wctx)
		if rerr := st.releaseCancelRules(dctx); rerr != nil {
			return nil, rerr
		}
		if rerr := st.releaseSingleton(dctx); rerr != nil {
			return nil, rerr
		}
		status, failure := "Completed", (*errorData)(nil)
		switch {
		case temporal.IsCanceledError(err):
			status = "Cancelled"
		case err != nil:
			status, failure = "Failed", st.failure
		}
		if eerr := st.emitFinished(dctx, status, out, failure); eerr != nil {
			return nil, eerr
		}
		// The SDK's workflow metrics handler stays silent on replay: counted once per run.
		mh := st.metrics().WithTags(map[string]string{"status": strings.ToLower(status)})
		mh.Counter(metrics.RunsFinished).Inc(1)
		mh.Timer(metrics.RunDuration).Record(workflow.Now(wctx).Sub(workflow.GetInfo(wctx).WorkflowStartTime))
		return out, err
	}
}

// execute checks the start timeout, arms the finish timeout, registers the cancel rules and
// calls the handler.
func (st *runState) execute(h Handler) (any, error) {
	in, wctx := st.in, st.wctx
	if in.StartTimeout > 0 && in.ScheduledAt > 0 && workflow.Now(wctx).Sub(time.UnixMilli(in.ScheduledAt)) > in.StartTimeout {
		// Timeouts cancel, they do not fail.
		return nil, temporal.NewCanceledError("start timeout: the run did not start within " + in.StartTimeout.String())
	}
	if in.FinishTimeout > 0 {
		// The handler's context is cancelled when the finish timeout passes: a step in
		// flight completes, and the run stops at the next step boundary.
		hctx, cancel := workflow.WithCancel(wctx)
		st.wctx, st.cancel = hctx, cancel
		st.deadline = workflow.Now(wctx).Add(in.FinishTimeout)
		timer := workflow.NewTimerWithOptions(wctx, in.FinishTimeout, workflow.TimerOptions{Summary: "finish timeout " + in.FinishTimeout.String()})
		workflow.Go(wctx, func(gctx workflow.Context) {
			if timer.Get(gctx, nil) == nil {
				cancel()
			}
		})
	}
	if err := st.registerCancelRules(); err != nil {
		return nil, err
	}
	if err := st.passThrottle(); err != nil {
		return nil, err
	}
	return st.call(h)
}

// passThrottle waits, in timers, until the run's throttle lets it begin.
func (st *runState) passThrottle() error {
	if st.in.Throttle == nil {
		return nil
	}
	// Runs recorded before the gate existed replay without it.
	if workflow.GetVersion(st.wctx, "throttle-gate", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	for {
		ctx := st.waitLA(st.wctx, "throttle")
		var wait time.Duration
		if err := workflow.ExecuteLocalActivity(ctx, st.acts.PassGate, *st.in.Throttle, st.in.RunID).Get(ctx, &wait); err != nil {
			return err
		}
		if wait <= 0 {
			return nil
		}
		if err := workflow.NewTimerWithOptions(st.wctx, wait, workflow.TimerOptions{Summary: "waits for its throttle slot"}).Get(st.wctx, nil); err != nil {
			return temporal.NewCanceledError("the run was cancelled")
		}
	}
}

// releaseSingleton frees the run's singleton lock.
func (st *runState) releaseSingleton(ctx workflow.Context) error {
	if st.in.Singleton == "" {
		return nil
	}
	lctx := st.waitLA(ctx, "release singleton")
	return workflow.ExecuteLocalActivity(lctx, st.acts.ReleaseSingleton, st.in.Singleton, st.in.RunID).Get(lctx, nil)
}

// call invokes the handler until it succeeds, fails for good, or the run is cancelled.
func (st *runState) call(h Handler) (any, error) {
	ctx := context.WithValue(context.Background(), stateKey{}, st)
	for attempt := 0; ; attempt++ {
		st.seen = map[string]int{}
		out, err := h(ctx, Call{Input: st.in, Attempt: attempt})
		if st.cancelled { // even if the handler swallowed the step's cancellation
			return nil, temporal.NewCanceledError()
		}
		if err == nil {
			return out, nil
		}
		if st.wctx.Err() != nil || st.cancelled {
			return nil, temporal.NewCanceledError()
		}
		var se *StepError
		var nr *NonRetriableError
		if errors.As(err, &se) {
			// The message is the step's own; the step id travels in the details (step_id).
			st.failure = &errorData{Error: se.Message, Name: se.Name, Message: se.Message}
			return nil, temporal.NewNonRetryableApplicationError(se.Message, "StepError", nil, se)
		}
		if errors.As(err, &nr) || attempt >= st.in.Retries {
			name := "Error"
			if nr != nil { // the same name as when a step returns it
				name = "NonRetriableError"
			}
			st.failure = &errorData{Error: err.Error(), Name: name, Message: err.Error()}
			return nil, temporal.NewNonRetryableApplicationError(err.Error(), name, nil)
		}
		d := retryDelay(st.in.RunID, "", attempt, err)
		if err := workflow.NewTimerWithOptions(st.wctx, d, workflow.TimerOptions{
			Summary: fmt.Sprintf("retry function body (attempt %d failed: %s)", attempt+1, err),
		}).Get(st.wctx, nil); err != nil {
			return nil, temporal.NewCanceledError()
		}
	}
}

type stateKey struct{}

type memoEntry struct {
	data json.RawMessage
	err  *StepError
}

// result is the recorded outcome of a completed step.
func (m memoEntry) result() (json.RawMessage, error) {
	if m.err != nil {
		return nil, m.err
	}
	return m.data, nil
}

// run is what every coroutine of one run shares.
type run struct {
	in      RunInput
	acts    *activities.Activities
	memo    map[string]memoEntry // completed steps of this run, by unique id
	seen    map[string]int       // ids used in the current handler invocation
	failure *errorData           // why the run failed, for its system events
	attrs   []any                // the run's ids for its log lines (logAttrs)

	// With a finish timeout: when it passes, and what cancels the handler's context.
	deadline time.Time
	cancel   func()
	lastEnd  time.Time // when the last step attempt ended (workflow time lags behind it)

	// cancelled is set when a step learns the run's cancellation was requested.
	cancelled bool
}

// metrics is the run's SDK metrics handler, tagged with its function.
func (st *runState) metrics() client.MetricsHandler {
	return workflow.GetMetricsHandler(st.wctx).WithTags(map[string]string{"function": st.in.FunctionID})
}

// checkDeadline cancels the run at a step boundary once the finish timeout has passed. A
// step that runs past the deadline completes in the same workflow task as the next step
// would start, before the timer reaches the workflow: its recorded end time tells.
func (st *runState) checkDeadline() error {
	if st.cancelled {
		return temporal.NewCanceledError("the run was cancelled")
	}
	if st.cancel == nil {
		return nil
	}
	now := workflow.Now(st.wctx)
	if st.lastEnd.After(now) {
		now = st.lastEnd
	}
	if now.After(st.deadline) {
		st.cancel()
		return temporal.NewCanceledError("finish timeout")
	}
	return nil
}

// runState is a run as seen from one workflow coroutine (the handler, or a parallel
// branch): Temporal blocks a coroutine through its own workflow.Context.
type runState struct {
	wctx workflow.Context
	*run
}

func stateFrom(ctx context.Context) (*runState, error) {
	st, ok := ctx.Value(stateKey{}).(*runState)
	if !ok {
		return nil, ErrNotInRun
	}
	return st, nil
}

// WorkflowContext returns the Temporal workflow context of the run ctx belongs to.
func WorkflowContext(ctx context.Context) (workflow.Context, error) {
	st, err := stateFrom(ctx)
	if err != nil {
		return nil, err
	}
	return st.wctx, nil
}

// uniqueID applies Inngest's rule for a repeated step id: the second use of "id" in one
// invocation becomes "id:1", the third "id:2".
func (st *runState) uniqueID(id string) string {
	n := st.seen[id]
	st.seen[id] = n + 1
	if n == 0 {
		return id
	}
	return fmt.Sprintf("%s:%d", id, n)
}

// retryDelay is the wait after failed attempt n: RetryAfter's delay (clamped) if the error
// asks for one, else the table plus a jitter that is a pure function of run, step and
// attempt, so replay computes the same timer.
func retryDelay(runID, stepID string, n int, err error) time.Duration {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.NextRetryDelay() > 0 {
		return clampRetryAfter(appErr.NextRetryDelay())
	}
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return clampRetryAfter(ra.Delay)
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%d", runID, stepID, n)
	jitter := time.Duration(h.Sum64()%uint64(MaxJitter/time.Millisecond)) * time.Millisecond
	return Backoff(n) + jitter
}
