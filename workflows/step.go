package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/activities"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/metrics"
)

// MaxStepOutput is the largest step result, in bytes of JSON, as Inngest's. Results over
// 256 KiB are kept in Redis and referenced from the history (Temporal's own limit is 2 MiB).
const MaxStepOutput = 4 << 20

// stepTimeout bounds one attempt of a step (a local activity: longer steps belong in a
// Temporal activity of their own).
const stepTimeout = 30 * time.Minute

// StepOutput is the recorded result of one step attempt. ID is checked on replay, so code
// that reorders steps stops with a clear message instead of reading another step's value.
type StepOutput struct {
	ID   string          `json:"id"`
	Data json.RawMessage `json:"data"`
	// Started and Ended are when the attempt began and finished (unix ms): Ended for the
	// finish timeout, both for the run's trace.
	Started int64 `json:"started,omitempty"`
	Ended   int64 `json:"ended,omitempty"`
	// Asked is when the attempt asked for its concurrency slot (steps with leases only).
	Asked int64 `json:"asked,omitempty"`
}

// attemptInfo travels in the details of a failed step attempt's error, so the run's trace
// can name the step and time the attempt from the history alone.
type attemptInfo struct {
	ID      string `json:"id"`
	Attempt int    `json:"attempt"`
	Started int64  `json:"started"` // the body began (after its concurrency slot)
	Ended   int64  `json:"ended"`
	// Asked is when the attempt asked for its concurrency slot (steps with leases only).
	Asked int64 `json:"asked,omitempty"`
}

// StepFunc is a step body with its result already encoded as JSON.
type StepFunc func(ctx context.Context) (json.RawMessage, error)

type attemptKey struct{}

// attemptTimes is what the guard tells RunStep: when the body began and whether it waited
// for concurrency leases first.
type attemptTimes struct {
	body   int64
	leased bool
	// limit replaces MaxStepOutput for this step (a call to an SDK app returns many steps).
	limit int
}

type timesKey struct{}

// bodyStarts records in ctx (from RunStep) that the step's body begins now.
func bodyStarts(ctx context.Context, leased bool) {
	if t, ok := ctx.Value(timesKey{}).(*attemptTimes); ok {
		t.body, t.leased = time.Now().UnixMilli(), leased
	}
}

// allowOutput lets the step whose body ctx was given to return up to n bytes.
func allowOutput(ctx context.Context, n int) {
	if t, ok := ctx.Value(timesKey{}).(*attemptTimes); ok {
		t.limit = n
	}
}

type inputKey struct{}

// StepInput is the input a rerun from this step gave it ("from_step": {"input": ...}), for
// the step body whose ctx this is; false when there is none.
func StepInput(ctx context.Context) (json.RawMessage, bool) {
	in, ok := ctx.Value(inputKey{}).(json.RawMessage)
	return in, ok
}

// StepAttempt is the 0-based attempt of the step whose body ctx was given to.
func StepAttempt(ctx context.Context) int {
	n, _ := ctx.Value(attemptKey{}).(int)
	return n
}

// runCancelledType is the error type of a step that did not start because the run's
// cancellation had been requested.
const runCancelledType = "RunCancelled"

// guard wraps a step body so that it does not start once the run's cancellation was
// requested. A failed check lets the step run: Redis being away must not stop runs.
func (st *runState) guard(id string, attempt int, fn StepFunc) StepFunc {
	leases := st.in.Concurrency
	leaseID := fmt.Sprintf("%s/%s/%d", st.in.RunID, id, attempt)
	score := float64(st.in.ScheduledAt - int64(st.in.Priority)*1000)
	return func(ctx context.Context) (json.RawMessage, error) {
		if st.acts.CancelRequested(ctx, st.in.RunID) {
			return nil, errRunCancelled
		}
		if len(leases) == 0 {
			bodyStarts(ctx, false)
			return fn(ctx)
		}
		ok, err := st.acts.AcquireLeases(ctx, st.in.FunctionID, leases, leaseID, st.in.RunID, score, slotHold)
		if err != nil {
			return nil, err
		}
		if !ok {
			if st.acts.CancelRequested(ctx, st.in.RunID) {
				return nil, errRunCancelled
			}
			return nil, errConcurrencyLimited
		}
		// Renew the lease while the step runs; a crash lets it expire.
		done := make(chan struct{})
		defer func() {
			close(done)
			_ = st.acts.ReleaseLeases(context.WithoutCancel(ctx), st.in.FunctionID, leases, leaseID)
		}()
		go func() {
			t := time.NewTicker(flowcontrol.LeaseTTL / 3)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					_, _ = st.acts.AcquireLeases(ctx, st.in.FunctionID, leases, leaseID, st.in.RunID, score, 0)
				}
			}
		}()
		bodyStarts(ctx, true)
		return fn(ctx)
	}
}

var errConcurrencyLimited = errors.New("concurrency limit reached")

// slotHold is how long a step whose concurrency key is full waits for a slot inside its
// local activity, taking a released slot within milliseconds; after it the step waits in
// a workflow timer (holding no worker) and asks again. Short enough that the workflow task
// needs no heartbeat (10 s task timeout).
const slotHold = 5 * time.Second

// concurrencyLimitedType is the error type of a step that found its concurrency keys full.
const concurrencyLimitedType = "ConcurrencyLimited"

// concurrencyWait is how long a step waits before asking again for a slot: it grows from
// 100 ms to 1 s, so a short wait is short and a long one does not flood the run's history
// (about 6 events per second of waiting).
func concurrencyWait(waits int) time.Duration {
	return min(100*time.Millisecond<<min(waits, 4), time.Second)
}

var errRunCancelled = errors.New("the run's cancellation was requested")

// RunStep is the one local-activity entry point of every step, so the recorded activity
// type ("RunStep") is stable across code changes.
func RunStep(ctx context.Context, id string, attempt int, fn StepFunc) (StepOutput, error) {
	called := time.Now().UnixMilli()
	var times attemptTimes
	ctx = context.WithValue(ctx, timesKey{}, &times)
	data, err := fn(context.WithValue(ctx, attemptKey{}, attempt))
	if errors.Is(err, errRunCancelled) {
		return StepOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), runCancelledType, nil)
	}
	if errors.Is(err, errConcurrencyLimited) {
		return StepOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), concurrencyLimitedType, nil,
			attemptInfo{ID: id, Attempt: attempt, Asked: called})
	}
	info := attemptInfo{ID: id, Attempt: attempt, Started: called, Ended: time.Now().UnixMilli()}
	if times.body > 0 {
		info.Started = times.body
	}
	if times.leased {
		info.Asked = called
	}
	if err != nil {
		opts := temporal.ApplicationErrorOptions{Details: []any{info}}
		name := "Error"
		var nr *NonRetriableError
		var ra *RetryAfterError
		var appErr *temporal.ApplicationError
		switch {
		case errors.As(err, &appErr): // already classified (by Tempest's own step bodies)
			if appErr.HasDetails() {
				return StepOutput{}, appErr
			}
			name, opts.NonRetryable, opts.NextRetryDelay = appErr.Type(), appErr.NonRetryable(), appErr.NextRetryDelay()
			return StepOutput{}, temporal.NewApplicationErrorWithOptions(appErr.Message(), name, opts)
		case errors.As(err, &nr):
			name, opts.NonRetryable = "NonRetriableError", true
		case errors.As(err, &ra):
			name, opts.NextRetryDelay = "RetryAfterError", clampRetryAfter(ra.Delay)
		}
		return StepOutput{}, temporal.NewApplicationErrorWithOptions(err.Error(), name, opts)
	}
	if limit := max(times.limit, MaxStepOutput); len(data) > limit {
		return StepOutput{}, temporal.NewApplicationErrorWithOptions(
			fmt.Sprintf("the step returned %d bytes of JSON, over the limit of %d", len(data), limit),
			"OutputTooLarge", temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{info}})
	}
	return StepOutput{ID: id, Data: data, Started: info.Started, Ended: info.Ended, Asked: info.Asked}, nil
}

// Run executes a step: memoized by id, each attempt one local activity, retried per the
// Inngest table. After the last attempt it returns a *StepError.
func Run(ctx context.Context, id string, fn StepFunc) (json.RawMessage, error) {
	st, err := stateFrom(ctx)
	if err != nil {
		return nil, err
	}
	return st.runStep(st.uniqueID(id), fn)
}

// runStep runs the step with the already unique id.
func (st *runState) runStep(id string, fn StepFunc) (json.RawMessage, error) {
	if m, ok := st.memo[id]; ok {
		return m.result()
	}
	fn = st.withStepInfo(id, fn)
	if fs := st.in.FromStep; fs != nil && fs.ID == id && fs.Input != nil {
		body := fn
		fn = func(ctx context.Context) (json.RawMessage, error) {
			return body(context.WithValue(ctx, inputKey{}, fs.Input))
		}
	}
	waits := 0
	var asked int64 // when this attempt first asked for its concurrency slot
	for attempt := 0; ; attempt++ {
		if err := st.checkDeadline(); err != nil {
			return nil, err
		}
		summary := id
		if attempt > 0 {
			summary = fmt.Sprintf("%s (attempt %d)", id, attempt+1)
		}
		// A step that has started finishes even if the run is cancelled meanwhile (its
		// context is not cancelled); then its result is discarded and the run stops.
		dctx, _ := workflow.NewDisconnectedContext(st.wctx)
		lctx := workflow.WithLocalActivityOptions(dctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: stepTimeout,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
			Summary:             summary,
		})
		var out StepOutput
		err := workflow.ExecuteLocalActivity(lctx, RunStep, id, attempt, st.guard(id, attempt, fn)).Get(lctx, &out)
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == runCancelledType {
			st.cancelled = true
		}
		if appErr != nil && appErr.Type() == concurrencyLimitedType && st.wctx.Err() == nil {
			st.metrics().Counter(metrics.ConcurrencyWait).Inc(1)
			var info attemptInfo
			if asked == 0 && appErr.HasDetails() && appErr.Details(&info) == nil {
				asked = info.Asked
			}
			// Waiting for a slot is not an attempt: the step waits in a timer, holding no
			// worker, and asks again.
			d := concurrencyWait(waits)
			waits++
			attempt--
			if err := workflow.NewTimerWithOptions(st.wctx, d, workflow.TimerOptions{
				Summary: fmt.Sprintf("%s waits for a concurrency slot", id),
			}).Get(st.wctx, nil); err != nil {
				return nil, err
			}
			continue
		}
		if st.wctx.Err() != nil || st.cancelled {
			return nil, temporal.NewCanceledError("the run was cancelled")
		}
		st.observeAttempt(out, err, asked)
		asked = 0
		if err == nil {
			if out.ID != id {
				// A panic fails the workflow task, not the run: the run waits, visible in the
				// Web UI with this message, until code that matches its history is deployed.
				panic(fmt.Sprintf("tempest: step order changed: the run's history has step %q where the code now runs %q; "+
					"keep the order of existing steps or version the change with workflow.GetVersion", out.ID, id))
			}
			st.memo[id] = memoEntry{data: out.Data}
			st.lastEnd = time.UnixMilli(out.Ended)
			return out.Data, nil
		}
		final := attempt >= st.in.Retries || (errors.As(err, &appErr) && appErr.NonRetryable())
		if final {
			se := &StepError{StepID: id, Name: "Error", Message: errMessage(err)}
			if appErr != nil && appErr.Type() != "" {
				se.Name = appErr.Type()
			}
			st.memo[id] = memoEntry{err: se}
			return nil, se
		}
		d := retryDelay(st.in.RunID, id, attempt, err)
		if err := workflow.NewTimerWithOptions(st.wctx, d, workflow.TimerOptions{
			Summary: fmt.Sprintf("retry %s in %s", id, d.Round(time.Millisecond)),
		}).Get(st.wctx, nil); err != nil {
			return nil, err
		}
	}
}

// observeAttempt counts a step attempt and its duration (the SDK's workflow metrics
// handler stays silent on replay).
// asked is when the attempt first asked for its concurrency slot, if it waited in timers.
func (st *runState) observeAttempt(out StepOutput, err error, asked int64) {
	outcome, started, ended, leased := "ok", out.Started, out.Ended, out.Asked
	if err != nil {
		outcome = "error"
		var appErr *temporal.ApplicationError
		var info attemptInfo
		if errors.As(err, &appErr) && appErr.HasDetails() && appErr.Details(&info) == nil {
			started, ended, leased = info.Started, info.Ended, info.Asked
		}
	}
	mh := st.metrics().WithTags(map[string]string{"outcome": outcome})
	mh.Counter(metrics.StepAttempts).Inc(1)
	if started > 0 && ended >= started {
		mh.Timer(metrics.StepDuration).Record(time.Duration(ended-started) * time.Millisecond)
	}
	if asked == 0 {
		asked = leased
	}
	if asked > 0 && started >= asked {
		st.metrics().Timer(metrics.ConcurrencyWaitTime).Record(time.Duration(started-asked) * time.Millisecond)
	}
}

// errMessage is the user's message without the activity-error framing around it.
func errMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}

// Sleep pauses the run for d with a durable timer; a completed sleep is not repeated when
// the handler body is retried. It returns early (with the cancellation) if the run is
// cancelled.
func Sleep(ctx context.Context, id string, d time.Duration) error {
	st, err := stateFrom(ctx)
	if err != nil {
		return err
	}
	id = st.uniqueID(id)
	if _, ok := st.memo[id]; ok {
		return nil
	}
	if err := st.checkDeadline(); err != nil {
		return err
	}
	if err := workflow.NewTimerWithOptions(st.wctx, d, workflow.TimerOptions{
		Summary: fmt.Sprintf("sleep %s (%s)", id, d),
	}).Get(st.wctx, nil); err != nil {
		return err
	}
	st.memo[id] = memoEntry{data: json.RawMessage("null")}
	return nil
}

// Now is the workflow's deterministic clock.
func Now(ctx context.Context) (time.Time, error) {
	st, err := stateFrom(ctx)
	if err != nil {
		return time.Time{}, err
	}
	return workflow.Now(st.wctx), nil
}

// SendEvent sends events through the app's ingest path as a step. Their ids derive from
// the run and step ids, so a retried step (or a worker that crashed mid-send) never starts
// a second set of runs.
func SendEvent(ctx context.Context, id string, events []json.RawMessage) ([]string, error) {
	st, err := stateFrom(ctx)
	if err != nil {
		return nil, err
	}
	uid := st.uniqueID(id)
	born := workflow.GetInfo(st.wctx).WorkflowStartTime
	eventIDs := make([]ulid.ULID, len(events))
	for i := range events {
		eventIDs[i] = DeriveID(born, st.in.RunID, uid, strconv.Itoa(i))
	}
	data, err := st.runStep(uid, func(ctx context.Context) (json.RawMessage, error) {
		ids, err := st.acts.Send(ctx, events, eventIDs, false)
		if err != nil {
			return nil, err
		}
		return json.Marshal(ids)
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	err = json.Unmarshal(data, &ids)
	return ids, err
}

// Fetch performs a durable HTTP request as a step: retried per the step rules on transport
// errors, 5xx and 429, memoized once it succeeds.
func Fetch(ctx context.Context, id string, req activities.FetchRequest) (activities.FetchResponse, error) {
	data, err := Run(ctx, id, func(ctx context.Context) (json.RawMessage, error) {
		resp, err := activities.Fetch(ctx, http.DefaultClient, req)
		var ra *activities.RetryAfter
		switch {
		case errors.Is(err, activities.ErrNotRetriable):
			return nil, &NonRetriableError{Err: err}
		case errors.As(err, &ra):
			return nil, &RetryAfterError{Delay: ra.Delay, Err: err}
		case err != nil:
			return nil, err
		}
		return json.Marshal(resp)
	})
	if err != nil {
		return activities.FetchResponse{}, err
	}
	var resp activities.FetchResponse
	err = json.Unmarshal(data, &resp)
	return resp, err
}
