package adapter

import (
	"context"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/workflows"
)

// StepError is what a step returns after its last attempt failed. Handle it to recover,
// or return it to fail the run without further retries.
type StepError = workflows.StepError

// NonRetriableError marks an error that must not be retried; see NonRetriable.
type NonRetriableError = workflows.NonRetriableError

// RetryAfterError carries the delay before the next attempt; see RetryAfter.
type RetryAfterError = workflows.RetryAfterError

// NonRetriable wraps err so the step (or handler body) returning it is not retried.
func NonRetriable(err error) error { return &workflows.NonRetriableError{Err: err} }

// RetryAfter wraps err so the next attempt waits d (clamped to 1 s–24 h) instead of the
// backoff table. The attempt still counts.
func RetryAfter(d time.Duration, err error) error {
	return &workflows.RetryAfterError{Delay: d, Err: err}
}

// WorkflowContext gives a handler the Temporal workflow.Context of its run, to mix in
// Temporal APIs (activities on other task queues, queries, workflow.GetVersion).
func WorkflowContext(ctx context.Context) (workflow.Context, error) {
	return workflows.WorkflowContext(ctx)
}
