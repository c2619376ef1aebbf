// Package tempesttest runs one Tempest function in Temporal's test environment, with no
// Temporal server and no Redis: the handler and its steps run for real (or answer from the
// test), sleeps, retries' backoff and timeouts skip ahead in virtual time, and the result
// says what the run did, for a test to check in ordinary Go.
//
// Define functions on an *adapter.Functions (the same definitions the app runs with
// Options.Functions), then Run one of them:
//
//	res, err := tempesttest.Run(fns, "checkout", tempesttest.Case{
//		Events: []adapter.Event{{Name: "shop/order.placed", Data: map[string]any{"total": 42}}},
//		Steps:  map[string][]tempesttest.Answer{"charge": {tempesttest.Fail(errors.New("card declined"))}},
//	})
//
// What is not here: flow control (concurrency, throttle, rate limit, debounce, batch,
// singleton, priority) does not act in a test run — its options are validated when the
// function is defined, as at registration — and cancelOn rules never fire.
package tempesttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/internal/bridge"
	"github.com/tempestrun/tempest/workflows"
)

// Case is one run to test.
type Case struct {
	// Events trigger the run: the first is the handler's Input.Event, all of them
	// Input.Events (a batch). At least one; each must trigger the function. An event
	// without ID or Timestamp gets one.
	Events []adapter.Event
	// Steps answers steps by id instead of running their bodies: step.Run, step.SendEvent
	// and step.Fetch (answer with Response). The i-th answer is for attempt i, the last one
	// for the attempts after it. A repeated step id gets ":1", ":2", ... as in the run.
	Steps map[string][]Answer
	// Waits feeds step.WaitForEvent by step id: the event arrives as soon as the wait
	// begins, if it has the waited name and matches the wait's If or Match; otherwise, or
	// with no entry, the wait times out (ErrEventNotReceived).
	Waits map[string]adapter.Event
	// Invokes answers step.Invoke by the invoked function's id as the code gives it (an
	// Answer's Value is the invoked run's output, its Err the run's failure). An invoke of
	// a function with no answer fails as an invoke of an unknown function does.
	Invokes map[string]Answer
	// Start is the run's virtual start time; zero: 2026-01-01 00:00 UTC.
	Start time.Time
}

// Answer is a step's (or an invoked run's) result given by the test: Value (any JSON
// encodable value) when Err is nil.
type Answer struct {
	Value any
	Err   error
}

// Return answers with v.
func Return(v any) Answer { return Answer{Value: v} }

// Fail answers with err: like a step body returning it, it is retried unless it is an
// adapter.NonRetriable error, and adapter.RetryAfter sets the delay.
func Fail(err error) Answer { return Answer{Err: err} }

// Response answers a step.Fetch: the HTTP status and body (decoded by the step as its
// response type says).
func Response(status int, body string) Answer {
	return Answer{Value: map[string]any{"status_code": status, "headers": map[string]string{}, "body": body}}
}

// Result is what the run did.
type Result struct {
	// Output is the handler's return value as JSON (null when it returned nil or failed).
	Output json.RawMessage
	// Err is the run's failure: a *adapter.StepError when the handler returned a step's
	// final error, else an error with the handler's message. Nil when the run completed.
	Err error
	// Steps are the run's steps in the order they began.
	Steps []Step
	// Sent are the events step.SendEvent sent (not answered by Steps).
	Sent []adapter.Event
	// Invoked are the step.Invoke calls, in order.
	Invoked []Invocation
	// Duration is the run's length in virtual time.
	Duration time.Duration
}

// Decode decodes Output into v.
func (r *Result) Decode(v any) error { return json.Unmarshal(r.Output, v) }

// Step returns the step with the unique id, or nil.
func (r *Result) Step(id string) *Step {
	for i := range r.Steps {
		if r.Steps[i].ID == id {
			return &r.Steps[i]
		}
	}
	return nil
}

// Step is one step of the run.
type Step struct {
	ID string
	// Op is "run" (step.Run, SendEvent, Fetch), "sleep", "wait" or "invoke".
	Op string
	// Attempts of a "run" step, in order; one for the others.
	Attempts []Attempt
}

// Attempt is one attempt of a step.
type Attempt struct {
	// Output is the attempt's result as JSON; for a wait, the event received (null on
	// timeout); for a sleep, null.
	Output json.RawMessage
	// Err is the attempt's error message ("" when it succeeded).
	Err string
	// Answered is true when the test's Case answered it (the body did not run).
	Answered bool
	// At is when it began, in virtual time.
	At time.Time
}

// Invocation is one step.Invoke.
type Invocation struct {
	StepID     string
	FunctionID string // as the code gave it
	Data       map[string]any
}

// DefaultStart is the virtual start time of a run whose Case sets none.
var DefaultStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// RunID is the run id of test runs.
const RunID = "01TESTRUN0000000000000000"

// Run runs the function id (its id in the app, or "<app>-<id>") of fns once with the case
// and returns what it did. The error is for a case that cannot run (unknown function, no
// events, an event that does not trigger the function); a run that fails returns its
// failure in Result.Err.
func Run(fns *adapter.Functions, id string, c Case) (*Result, error) {
	f, ok := bridge.Lookup(fns, id)
	if !ok {
		return nil, fmt.Errorf("tempesttest: no function %q in these functions: define it with adapter.CreateFunction first", id)
	}
	start := c.Start
	if start.IsZero() {
		start = DefaultStart
	}
	if len(c.Events) == 0 {
		return nil, fmt.Errorf("tempesttest: Case.Events is empty: give the event that triggers %s", f.Slug)
	}
	in := workflows.RunInput{FunctionID: f.Slug, RunID: RunID, Retries: f.Retries, EventID: "01TESTEVENT000000000000000",
		Cancel: f.Cancel, FinishTimeout: f.FinishTimeout, ScheduledAt: start.UnixMilli()}
	for i, ev := range c.Events {
		if ev.ID == "" {
			ev.ID = fmt.Sprintf("test-event-%d", i)
		}
		if ev.Timestamp == 0 {
			ev.Timestamp = start.UnixMilli()
		}
		if ev.Data == nil {
			ev.Data = map[string]any{}
		}
		raw, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("tempesttest: event %d: %w", i, err)
		}
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		if !f.Triggers(ev.Name, m) {
			return nil, fmt.Errorf("tempesttest: event %d (%q) does not trigger %s: check its name and the trigger's expression", i, ev.Name, f.Slug)
		}
		in.Events = append(in.Events, raw)
	}

	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartTime(start)
	r := &recorder{c: c, env: env, fns: fns, slug: f.Slug, trigger: in.Events[0], res: &Result{}}
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&sleeps{r: r}}})
	acts := r.activities()
	env.RegisterWorkflowWithOptions(workflows.Workflow(f.Handler, acts), workflow.RegisterOptions{Name: f.Slug})
	env.OnActivity(acts.RegisterWaits, mock.Anything, mock.Anything).Return(r.registerWaits)
	env.OnActivity(acts.ClaimWait, mock.Anything, mock.Anything, mock.Anything).Return(r.claimWait)
	for fid, a := range c.Invokes {
		r.registerInvoke(fid, a)
	}
	env.OnActivity(workflows.RunStep, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(r.runStep)

	env.ExecuteWorkflow(f.Slug, in)
	res := r.res
	res.Duration = env.Now().Sub(start)
	if !env.IsWorkflowCompleted() {
		return res, errors.New("tempesttest: the run did not complete (it waits for something the test environment cannot give)")
	}
	if err := env.GetWorkflowError(); err != nil {
		res.Err = runError(err)
		res.Output = json.RawMessage("null")
		return res, nil
	}
	var out any
	if err := env.GetWorkflowResult(&out); err != nil && !errors.Is(err, temporal.ErrNoData) {
		return res, fmt.Errorf("tempesttest: decode the run's output: %w", err)
	}
	res.Output, _ = json.Marshal(out)
	return res, nil
}

// runError turns the workflow's failure into what a user reads: the step's error, or the
// handler's message.
func runError(err error) error {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		var se adapter.StepError
		if appErr.HasDetails() && appErr.Details(&se) == nil && se.Name != "" {
			return &se
		}
		return errors.New(appErr.Message())
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		return errors.New("the run was cancelled")
	}
	return err
}

// recorder records what the test run does and answers for its activities from the Case.
type recorder struct {
	c       Case
	env     *testsuite.TestWorkflowEnvironment
	fns     *adapter.Functions
	slug    string // the function under test
	trigger json.RawMessage

	mu  sync.Mutex
	res *Result
}

// step returns the recorded step id (adding it as op when new).
func (r *recorder) step(id, op string) *Step {
	for i := range r.res.Steps {
		if r.res.Steps[i].ID == id {
			return &r.res.Steps[i]
		}
	}
	r.res.Steps = append(r.res.Steps, Step{ID: id, Op: op})
	return &r.res.Steps[len(r.res.Steps)-1]
}

// runStep stands in for workflows.RunStep: every step attempt passes here.
func (r *recorder) runStep(ctx context.Context, id string, attempt int, fn workflows.StepFunc) (workflows.StepOutput, error) {
	at := r.env.Now()
	answers, answered := r.c.Steps[id]
	if answered && len(answers) > 0 {
		a := answers[min(attempt, len(answers)-1)]
		fn = func(context.Context) (json.RawMessage, error) {
			if a.Err != nil {
				return nil, a.Err
			}
			b, err := json.Marshal(a.Value)
			if err != nil {
				return nil, adapter.NonRetriable(fmt.Errorf("tempesttest: the answer to step %q does not encode to JSON: %w", id, err))
			}
			return b, nil
		}
	}
	out, err := workflows.RunStep(ctx, id, attempt, fn)
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.step(id, "run")
	a := Attempt{Output: out.Data, Answered: answered, At: at}
	if err != nil {
		a.Output = nil
		// The message only: in the test environment an attempt's error details are Go
		// values, and decoding them into another type panics.
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			a.Err = appErr.Message()
		} else {
			a.Err = err.Error()
		}
	}
	s.Attempts = append(s.Attempts, a)
	return out, err
}

// registerInvoke makes the invoked function's workflow answer from the case.
func (r *recorder) registerInvoke(fid string, a Answer) {
	slug := r.slugOf(fid)
	r.env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in workflows.RunInput) (any, error) {
		var ev struct {
			Data map[string]any `json:"data"`
		}
		if len(in.Events) > 0 {
			_ = json.Unmarshal(in.Events[0], &ev)
		}
		step := ""
		if meta, ok := ev.Data["_inngest"].(map[string]any); ok {
			step, _ = meta["name"].(string)
		}
		delete(ev.Data, "_inngest")
		r.mu.Lock()
		r.res.Invoked = append(r.res.Invoked, Invocation{StepID: step, FunctionID: fid, Data: ev.Data})
		s := r.step(step, "invoke")
		att := Attempt{Answered: true, At: workflow.Now(ctx)}
		if a.Err != nil {
			att.Err = a.Err.Error()
		} else {
			att.Output, _ = json.Marshal(a.Value)
		}
		s.Attempts = append(s.Attempts, att)
		r.mu.Unlock()
		if a.Err != nil {
			return nil, temporal.NewNonRetryableApplicationError(a.Err.Error(), "Error", nil)
		}
		return a.Value, nil
	}, workflow.RegisterOptions{Name: slug})
}
