// Package step is the step API of Tempest functions, named after inngestgo's: each step is
// memoized (a completed step never runs again, also after a worker restart) and retried on
// its own. Call these only with the ctx a handler received.
package step

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/tempestrun/tempest/activities"
	_ "github.com/tempestrun/tempest/adapter" // fills the bridge (bridge.ToRun, FromRun)
	"github.com/tempestrun/tempest/adapter/internal/bridge"
	"github.com/tempestrun/tempest/workflows"
)

// Run runs fn as a step named id and returns its result. fn is ordinary Go (I/O, clocks,
// randomness are fine); its result must encode to JSON. On failure fn is retried per the
// function's Retries with Inngest's backoff (adapter.NonRetriable stops, adapter.RetryAfter
// sets the delay); after the last attempt Run returns an *adapter.StepError, which the
// handler may handle or return.
func Run[T any](ctx context.Context, id string, fn func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	data, err := workflows.Run(ctx, id, func(ctx context.Context) (json.RawMessage, error) {
		v, err := fn(ctx)
		if err != nil {
			return nil, bridge.ToRun(err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, &workflows.NonRetriableError{Err: fmt.Errorf("step %q: result is not JSON-encodable: %w", id, err)}
		}
		return b, nil
	})
	if err != nil {
		return zero, bridge.FromRun(err)
	}
	var out T
	if err := json.Unmarshal(data, &out); err != nil {
		return zero, fmt.Errorf("step %q: decode memoized result into %T: %w", id, out, err)
	}
	return out, nil
}

// Sleep pauses the run for d (a durable timer: the run holds no worker while it sleeps).
func Sleep(ctx context.Context, id string, d time.Duration) error {
	return workflows.Sleep(ctx, id, d)
}

// SleepUntil pauses the run until t; a time in the past returns at once.
func SleepUntil(ctx context.Context, id string, t time.Time) error {
	now, err := workflows.Now(ctx)
	if err != nil {
		return err
	}
	return workflows.Sleep(ctx, id, max(t.Sub(now), 0))
}

// Logger is a logger for code of a run, with its run, function and event ids (and in a
// step's body, the step id): in the handler it is silent while the run replays, so a line
// is written once however often the handler runs again; in a step's body, once per
// attempt. Lines go to the app's logger (Options.Logger). Outside a run: slog.Default().
func Logger(ctx context.Context) *slog.Logger { return workflows.Logger(ctx) }

// Attempt is the 0-based attempt number of the step whose body received ctx.
func Attempt(ctx context.Context) int { return workflows.StepAttempt(ctx) }

// Input decodes into v the input a rerun from this step gave it (POST
// /v2/runs/{id}/rerun with "from_step": {"step_id", "input"}), for the body of the step
// whose ctx this is. It reports false, leaving v alone, when there is none: a step that
// takes its input from a closure can let an operator override it this way.
func Input(ctx context.Context, v any) (bool, error) {
	raw, ok := workflows.StepInput(ctx)
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("step input %s does not decode into %T: %w", raw, v, err)
	}
	return true, nil
}

// SendEvent sends events (adapter.Event values, or any struct/map with name and data) as a
// step named id and returns their internal ids. It goes through the same validation and
// fan-out as POST /e/{key}; a retried step never sends twice.
func SendEvent(ctx context.Context, id string, events ...any) ([]string, error) {
	raws := make([]json.RawMessage, len(events))
	for i, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("step %q: event %d: %w", id, i, err)
		}
		raws[i] = b
	}
	ids, err := workflows.SendEvent(ctx, id, raws)
	return ids, bridge.FromRun(err)
}

// InvokeOpts says which function Invoke runs.
type InvokeOpts struct {
	// FunctionID is the target's fully qualified id ("<app>-<fn>", any app of the
	// environment) or its id in this app. Required.
	FunctionID string
	// Data becomes the data of the inngest/function.invoked event the invoked run receives.
	Data map[string]any
	// Timeout stops waiting after this long (the invoked run goes on); 0 waits for ever.
	Timeout time.Duration
}

// Invoke runs another function as a child workflow and returns its output decoded into T.
// A failed, cancelled or timed-out invoked run is a *adapter.StepError (not retried here:
// the invoked function has its own retries).
func Invoke[T any](ctx context.Context, id string, opts InvokeOpts) (T, error) {
	var out T
	data, err := workflows.Invoke(ctx, id, workflows.InvokeOpts(opts))
	if err != nil {
		return out, bridge.FromRun(err)
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return out, fmt.Errorf("step %q: decode the invoked run's output into %T: %w", id, out, err)
	}
	return out, nil
}

// FetchOpts is the HTTP request of Fetch.
type FetchOpts struct {
	// URL is an absolute http or https URL. Required.
	URL string
	// Method defaults to GET.
	Method  string
	Headers map[string]string
	Body    string
}

// FetchResponse is the answer; Body is decoded into T (a string gets the raw body).
type FetchResponse[T any] struct {
	StatusCode int               `json:"status_code"`
	Headers    map[string]string `json:"headers"`
	Body       T                 `json:"body"`
	URL        string            `json:"url"`
}

// Fetch makes a durable HTTP request as a step named id: transport errors, 5xx and 429 are
// retried per the step rules (honouring Retry-After); other answers, 4xx included, are
// returned. The response is memoized like any step result.
func Fetch[T any](ctx context.Context, id string, opts FetchOpts) (FetchResponse[T], error) {
	raw, err := workflows.Fetch(ctx, id, activities.FetchRequest(opts))
	if err != nil {
		return FetchResponse[T]{}, bridge.FromRun(err)
	}
	out := FetchResponse[T]{StatusCode: raw.StatusCode, Headers: raw.Headers, URL: raw.URL}
	if s, ok := any(&out.Body).(*string); ok {
		*s = raw.Body
	} else if err := json.Unmarshal([]byte(raw.Body), &out.Body); err != nil {
		return out, fmt.Errorf("step %q: decode the response body into %T: %w", id, out.Body, err)
	}
	return out, nil
}

// ErrEventNotReceived is what WaitForEvent returns when its timeout passes first.
var ErrEventNotReceived = workflows.ErrEventNotReceived

// WaitForEventOpts says which event WaitForEvent takes.
type WaitForEventOpts struct {
	// Event is the name of the event to wait for. Required.
	Event string
	// Timeout is how long to wait: more than 0, at most 366 days. Required.
	Timeout time.Duration
	// If is CEL over `event` (this run's triggering event) and `async` (the candidate),
	// like "async.data.total > 100". Set If or Match, not both.
	If string
	// Match is a path such as "data.userId": the candidate's value must equal the
	// triggering event's (waits with Match are indexed by the value: delivery is a lookup).
	Match string
}

// WaitForEvent pauses the run (holding no worker) until a matching event arrives after the
// wait began, and returns it decoded into T (an adapter.GenericEvent[D], say). On timeout
// it returns ErrEventNotReceived, which is not a failure of the run.
func WaitForEvent[T any](ctx context.Context, id string, opts WaitForEventOpts) (T, error) {
	var out T
	data, err := workflows.WaitForEvent(ctx, id, workflows.WaitOpts(opts))
	if err != nil {
		return out, bridge.FromRun(err)
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return out, fmt.Errorf("step %q: decode the event into %T: %w", id, out, err)
	}
	return out, nil
}
