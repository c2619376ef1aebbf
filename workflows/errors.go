package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
)

// NonRetriableError stops a step (or the run) from being retried.
type NonRetriableError struct{ Err error }

func (e *NonRetriableError) Error() string { return e.Err.Error() }
func (e *NonRetriableError) Unwrap() error { return e.Err }

// RetryAfterError sets the delay before the next attempt of a step.
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// StepError is what a step returns to the handler after its last attempt failed. Returning
// it (or an error wrapping it) from the handler fails the run at once, without retries.
type StepError struct {
	StepID  string `json:"step_id"`
	Name    string `json:"name"`
	Message string `json:"message"`
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step %q failed: %s", e.StepID, e.Message)
}

// ErrNotInRun is returned (wrapped) by step functions called outside a Tempest run.
var ErrNotInRun = errors.New("tempest: step called outside a function run (use the ctx the handler received)")

// Limits of the retry delays a RetryAfterError may ask for.
const (
	minRetryAfter = time.Second
	maxRetryAfter = 24 * time.Hour
)

func clampRetryAfter(d time.Duration) time.Duration {
	return min(max(d, minRetryAfter), maxRetryAfter)
}

// backoffTable is Inngest's retry schedule, indexed by the attempt that just failed.
var backoffTable = []time.Duration{
	15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute,
	10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour, 2 * time.Hour,
}

// MaxJitter bounds the random part added to each table delay.
const MaxJitter = 30 * time.Second

// Backoff is the table delay after failed attempt n (0-based), without jitter.
func Backoff(n int) time.Duration {
	return backoffTable[min(n, len(backoffTable)-1)]
}

// Failure names an error that came back from Temporal (a run's, a step attempt's, an
// invoked run's) the one way Tempest shows it: an application error's type (a StepError's
// own name when it carries one) and message; cancellations, terminations and timeouts by
// their kind. Used for run outputs, traces and invoke results alike.
func Failure(err error) (name, message string) {
	var appErr *temporal.ApplicationError
	var canceled *temporal.CanceledError
	var termErr *temporal.TerminatedError
	var toErr *temporal.TimeoutError
	switch {
	case err == nil:
		return "", ""
	case errors.As(err, &appErr):
		name = appErr.Type()
		var se StepError
		if appErr.HasDetails() && appErr.Details(&se) == nil && se.Name != "" {
			name = se.Name
		}
		return name, appErr.Message()
	case errors.As(err, &canceled):
		return "Cancelled", "cancelled"
	case errors.As(err, &termErr):
		return "Terminated", termErr.Error()
	case errors.As(err, &toErr):
		return "TimedOut", toErr.Error()
	}
	return "Error", err.Error()
}
