package adapter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/adapter/internal/bridge"
	"github.com/tempestrun/tempest/workflows"
)

// StepError is what a step (step.Run, Invoke, SendEvent, Fetch) returns after its last
// attempt failed. Handle it to recover, or return it (or an error wrapping it) to fail the
// run at once, without retrying the handler.
type StepError struct {
	// StepID is the step's unique id (a repeated id gets ":1", ":2", ...).
	StepID string `json:"step_id"`
	// Name is the error's kind: "Error", "NonRetriableError", "RetryAfterError", or for an
	// invoked run that failed, its error's name ("InvokeTimeout", "Cancelled", ...).
	Name string `json:"name"`
	// Message is the last attempt's error message.
	Message string `json:"message"`
}

func (e *StepError) Error() string { return fmt.Sprintf("step %q failed: %s", e.StepID, e.Message) }

// NonRetriableError marks an error that must not be retried; see NonRetriable.
type NonRetriableError struct{ Err error }

func (e *NonRetriableError) Error() string { return e.Err.Error() }
func (e *NonRetriableError) Unwrap() error { return e.Err }

// RetryAfterError carries the delay before the next attempt; see RetryAfter.
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// NonRetriable wraps err so the step (or handler body) returning it is not retried.
func NonRetriable(err error) error { return &NonRetriableError{Err: err} }

// RetryAfter wraps err so the next attempt waits d (clamped to 1 s–24 h) instead of the
// backoff table. The attempt still counts.
func RetryAfter(d time.Duration, err error) error {
	return &RetryAfterError{Delay: d, Err: err}
}

func init() { bridge.ToRun, bridge.FromRun = toRun, fromRun }

// toRun hands an error of user code to the run machinery, which knows its own types.
func toRun(err error) error {
	if err == nil {
		return nil
	}
	var se *StepError
	var nr *NonRetriableError
	var ra *RetryAfterError
	switch {
	case errors.As(err, &se):
		return &workflows.StepError{StepID: se.StepID, Name: se.Name, Message: se.Message}
	case errors.As(err, &nr):
		return &workflows.NonRetriableError{Err: err}
	case errors.As(err, &ra):
		return &workflows.RetryAfterError{Delay: ra.Delay, Err: err}
	}
	return err
}

// fromRun gives user code a step's failure as a *StepError.
func fromRun(err error) error {
	var se *workflows.StepError
	if errors.As(err, &se) {
		return &StepError{StepID: se.StepID, Name: se.Name, Message: se.Message}
	}
	return err
}

// WorkflowContext gives a handler the Temporal workflow.Context of its run, to mix in
// Temporal APIs (activities on other task queues, queries, workflow.GetVersion).
func WorkflowContext(ctx context.Context) (workflow.Context, error) {
	return workflows.WorkflowContext(ctx)
}
