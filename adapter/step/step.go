// Package step is the step API of Tempest functions, named after inngestgo's: each step is
// memoized (a completed step never runs again, also after a worker restart) and retried on
// its own. Call these only with the ctx a handler received.
package step

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tempestrun/tempest/workflows"
)

// Run runs fn as a step named id and returns its result. fn is ordinary Go (I/O, clocks,
// randomness are fine); its result must encode to JSON. On failure fn is retried per the
// function's Retries with Inngest's backoff; after the last attempt Run returns a
// *workflows.StepError (see adapter.StepError) which the handler may handle or return.
func Run[T any](ctx context.Context, id string, fn func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	data, err := workflows.Run(ctx, id, func(ctx context.Context) (json.RawMessage, error) {
		v, err := fn(ctx)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, &workflows.NonRetriableError{Err: fmt.Errorf("step %q: result is not JSON-encodable: %w", id, err)}
		}
		return b, nil
	})
	if err != nil {
		return zero, err
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

// Attempt is the 0-based attempt number of the step whose body received ctx.
func Attempt(ctx context.Context) int { return workflows.StepAttempt(ctx) }

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
	return workflows.SendEvent(ctx, id, raws)
}
