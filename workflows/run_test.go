package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/activities"
	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/workflows"
)

// run executes handler h as a run with the given retries in Temporal's test environment,
// which skips timers, and returns the run's result, its error and every timer it set.
func run(t *testing.T, retries int, h workflows.Handler) (any, error, []time.Duration) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	var timers []time.Duration
	env.SetOnTimerScheduledListener(func(_ string, d time.Duration) { timers = append(timers, d) })
	// As adapter.CreateFunction's wrapper does, the handler's errors of user types go to the
	// run as the machinery's.
	wrapped := func(ctx context.Context, c workflows.Call) (any, error) {
		out, err := h(ctx, c)
		var se *adapter.StepError
		var nr *adapter.NonRetriableError
		switch {
		case errors.As(err, &se):
			err = &workflows.StepError{StepID: se.StepID, Name: se.Name, Message: se.Message}
		case errors.As(err, &nr):
			err = &workflows.NonRetriableError{Err: err}
		}
		return out, err
	}
	env.RegisterWorkflowWithOptions(workflows.Workflow(wrapped, testActivities()), workflow.RegisterOptions{Name: "fn"})
	env.ExecuteWorkflow("fn", workflows.RunInput{FunctionID: "app-fn", RunID: "01RUN", Retries: retries})
	if !env.IsWorkflowCompleted() {
		t.Fatal("run did not complete")
	}
	var out any
	err := env.GetWorkflowError()
	if err == nil {
		if gerr := env.GetWorkflowResult(&out); gerr != nil {
			t.Fatal(gerr)
		}
	}
	return out, err, timers
}

// testActivities are activities that reach no service: sent events are accepted, and
// Redis refuses every command before dialing (a step's cancel check finds no request).
func testActivities() *activities.Activities {
	noRedis := redis.NewClient(&redis.Options{Limiter: refuseAll{}, MaxRetries: -1})
	return &activities.Activities{
		Redis: noRedis,
		Send: func(_ context.Context, _ []json.RawMessage, ids []ulid.ULID, _ bool) ([]string, error) {
			out := make([]string, len(ids))
			for i, id := range ids {
				out[i] = id.String()
			}
			return out, nil
		},
		Resolve: func(string) (activities.FunctionInfo, bool) { return activities.FunctionInfo{}, false },
	}
}

type refuseAll struct{}

func (refuseAll) Allow() error       { return errors.New("no Redis in unit tests") }
func (refuseAll) ReportResult(error) {}

func TestStepRetriesFollowInngestTable(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	_, err, timers := run(t, 4, func(ctx context.Context, _ workflows.Call) (any, error) {
		_, err := step.Run(ctx, "flaky", func(ctx context.Context) (int, error) {
			calls.Add(1)
			return 0, errors.New("boom")
		})
		return nil, err
	})
	if calls.Load() != 5 {
		t.Fatalf("step ran %d times, want 5 (4 retries)", calls.Load())
	}
	if len(timers) != 4 {
		t.Fatalf("got %d retry timers, want 4: %v", len(timers), timers)
	}
	for i, d := range timers {
		lo := workflows.Backoff(i)
		if d < lo || d >= lo+workflows.MaxJitter {
			t.Errorf("retry %d waited %s, want [%s, %s)", i+1, d, lo, lo+workflows.MaxJitter)
		}
	}
	var se *adapter.StepError
	if !errors.As(err, &se) && !isStepFailure(err) {
		t.Fatalf("run error = %v, want the step's error", err)
	}
}

func isStepFailure(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == "StepError" && appErr.NonRetryable()
}

func TestNonRetriableStopsAtOnce(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	out, err, timers := run(t, 4, func(ctx context.Context, _ workflows.Call) (any, error) {
		_, err := step.Run(ctx, "charge", func(ctx context.Context) (int, error) {
			calls.Add(1)
			return 0, &workflows.NonRetriableError{Err: errors.New("card declined")}
		})
		var se *adapter.StepError
		if errors.As(err, &se) {
			return "recovered: " + se.Message, nil // the handler may recover
		}
		return nil, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 || len(timers) != 0 {
		t.Fatalf("calls=%d timers=%v, want one attempt and no retry", calls.Load(), timers)
	}
	if out != "recovered: card declined" {
		t.Fatalf("output %v", out)
	}
}

func TestRetryAfterSetsDelayClamped(t *testing.T) {
	t.Parallel()
	delays := []time.Duration{3 * time.Second, 10 * time.Millisecond, 48 * time.Hour}
	var calls atomic.Int32
	out, err, timers := run(t, 5, func(ctx context.Context, _ workflows.Call) (any, error) {
		return step.Run(ctx, "s", func(ctx context.Context) (int, error) {
			n := calls.Add(1) - 1
			if int(n) < len(delays) {
				return 0, &workflows.RetryAfterError{Delay: delays[n], Err: errors.New("later")}
			}
			return step.Attempt(ctx), nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{3 * time.Second, time.Second, 24 * time.Hour}
	if len(timers) != len(want) {
		t.Fatalf("timers %v, want %v", timers, want)
	}
	for i := range want {
		if timers[i] != want[i] {
			t.Errorf("retry %d waited %s, want %s", i+1, timers[i], want[i])
		}
	}
	if out != float64(3) {
		t.Fatalf("step.Attempt in the successful attempt = %v, want 3", out)
	}
}

func TestRepeatedStepIDsAndMemoizedHandlerRetry(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var attempts []int
	out, err, timers := run(t, 2, func(ctx context.Context, c workflows.Call) (any, error) {
		attempts = append(attempts, c.Attempt)
		sum := 0
		for range 3 {
			v, err := step.Run(ctx, "add", func(ctx context.Context) (int, error) { return int(calls.Add(1)), nil })
			if err != nil {
				return nil, err
			}
			sum += v
		}
		if c.Attempt == 0 {
			return nil, errors.New("fail outside steps") // retried; steps stay memoized
		}
		return sum, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Fatalf("steps ran %d times, want 3 (ids add, add:1, add:2, each once)", calls.Load())
	}
	if out != float64(6) || len(attempts) != 2 || attempts[1] != 1 {
		t.Fatalf("out=%v attempts=%v", out, attempts)
	}
	if len(timers) != 1 || timers[0] < 15*time.Second {
		t.Fatalf("handler retry timers %v, want one table delay", timers)
	}
}

func TestUnhandledStepErrorFailsWithoutBodyRetry(t *testing.T) {
	t.Parallel()
	var bodies atomic.Int32
	_, err, _ := run(t, 1, func(ctx context.Context, _ workflows.Call) (any, error) {
		bodies.Add(1)
		_, err := step.Run(ctx, "s", func(ctx context.Context) (int, error) { return 0, errors.New("no") })
		return nil, err
	})
	if !isStepFailure(err) {
		t.Fatalf("err = %v, want a non-retryable StepError failure", err)
	}
	if bodies.Load() != 1 {
		t.Fatalf("handler body ran %d times, want 1", bodies.Load())
	}
}

func TestSleepIsATimer(t *testing.T) {
	t.Parallel()
	_, err, timers := run(t, 0, func(ctx context.Context, _ workflows.Call) (any, error) {
		return "awake", step.Sleep(ctx, "nap", 90*time.Minute)
	})
	if err != nil || len(timers) != 1 || timers[0] != 90*time.Minute {
		t.Fatalf("err=%v timers=%v", err, timers)
	}
}

func TestStepOutsideRun(t *testing.T) {
	t.Parallel()
	_, err := step.Run(context.Background(), "x", func(context.Context) (int, error) { return 1, nil })
	if !errors.Is(err, workflows.ErrNotInRun) {
		t.Fatalf("err = %v, want ErrNotInRun", err)
	}
}

func TestStepOutputOverLimitIsAClearError(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	out, err, _ := run(t, 3, func(ctx context.Context, _ workflows.Call) (any, error) {
		_, err := step.Run(ctx, "big", func(context.Context) (string, error) {
			calls.Add(1)
			return strings.Repeat("x", workflows.MaxStepOutput), nil
		})
		var se *adapter.StepError
		if errors.As(err, &se) {
			return se.Name + ": " + se.Message, nil
		}
		return nil, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Fatalf("oversized step ran %d times, want 1 (not retried)", calls.Load())
	}
	if s, _ := out.(string); !strings.HasPrefix(s, "OutputTooLarge: ") || !strings.Contains(s, "over the limit") {
		t.Fatalf("error %q", s)
	}
}

func TestSleepUntil(t *testing.T) {
	t.Parallel()
	_, err, timers := run(t, 0, func(ctx context.Context, _ workflows.Call) (any, error) {
		now, err := workflows.Now(ctx)
		if err != nil {
			return nil, err
		}
		if err := step.SleepUntil(ctx, "later", now.Add(2*time.Hour)); err != nil {
			return nil, err
		}
		return "done", step.SleepUntil(ctx, "past", now.Add(-time.Hour)) // returns at once
	})
	if err != nil || len(timers) != 1 || timers[0] != 2*time.Hour {
		t.Fatalf("err=%v timers=%v, want one 2h timer", err, timers)
	}
}

// A failed run's message is the error's own: a step's failure does not repeat its step id
// (it travels in the details), and NonRetriable has one name from a step or the handler.
func TestFailureNamesAndMessages(t *testing.T) {
	t.Parallel()
	_, err, _ := run(t, 0, func(ctx context.Context, _ workflows.Call) (any, error) {
		_, err := step.Run(ctx, "charge", func(ctx context.Context) (int, error) { return 0, errors.New("card declined") })
		return nil, err
	})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Message() != "card declined" {
		t.Fatalf("run error %v, want the message %q", err, "card declined")
	}
	var se workflows.StepError
	if appErr.Details(&se) != nil || se.StepID != "charge" {
		t.Fatalf("details %+v, want the step id", se)
	}
	_, err, _ = run(t, 3, func(ctx context.Context, _ workflows.Call) (any, error) {
		return nil, &workflows.NonRetriableError{Err: errors.New("bad input")}
	})
	if !errors.As(err, &appErr) || appErr.Type() != "NonRetriableError" {
		t.Fatalf("handler NonRetriable failed the run as %v", err)
	}
	_, err, _ = run(t, 0, func(ctx context.Context, _ workflows.Call) (any, error) {
		_, err := step.Run(ctx, "s", func(ctx context.Context) (int, error) {
			return 0, &workflows.NonRetriableError{Err: errors.New("bad input")}
		})
		var se *adapter.StepError
		if errors.As(err, &se) && se.Name != "NonRetriableError" {
			return nil, fmt.Errorf("step's name %q", se.Name)
		}
		return nil, err
	})
	if !errors.As(err, &appErr) || appErr.Message() != "bad input" {
		t.Fatalf("run error %v", err)
	}
}
