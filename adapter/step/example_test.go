package step_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/adapter/tempesttest"
)

// define adds a function triggered by "demo/go" to fresh definitions.
func define[T any](opts adapter.FunctionOpts, fn adapter.SDKFunction[T]) *adapter.Functions {
	fns := adapter.NewFunctions("demo")
	if _, err := adapter.CreateFunction(fns, opts, adapter.EventTrigger("demo/go", nil), fn); err != nil {
		panic(err)
	}
	return fns
}

func run(fns *adapter.Functions, c tempesttest.Case) *tempesttest.Result {
	if len(c.Events) == 0 {
		c.Events = []adapter.Event{{Name: "demo/go", Data: map[string]any{"user": "u-1"}}}
	}
	res, err := tempesttest.Run(fns, "fn", c)
	if err != nil {
		panic(err)
	}
	return res
}

// A step's result is memoized: once it succeeded, the run never executes it again, and
// later code reads its recorded value.
func ExampleRun() {
	fns := define(adapter.FunctionOpts{ID: "fn"}, func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
		greeting, err := step.Run(ctx, "greet", func(ctx context.Context) (string, error) {
			return fmt.Sprintf("hello %s", in.Event.Data["user"]), nil
		})
		if err != nil {
			return nil, err
		}
		return greeting, nil
	})
	res := run(fns, tempesttest.Case{})
	fmt.Println(string(res.Output), res.Steps[0].ID, len(res.Steps[0].Attempts))
	// Output: "hello u-1" greet 1
}

// A failing step is retried on its own with Inngest's backoff (15 s, 30 s, 1 min, ... plus
// jitter); the handler sees only the final outcome.
func ExampleRun_retry() {
	calls := 0
	fns := define(adapter.FunctionOpts{ID: "fn", Retries: adapter.Ptr(3)}, func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
		return step.Run(ctx, "flaky", func(ctx context.Context) (int, error) {
			calls++
			if step.Attempt(ctx) < 2 {
				return 0, errors.New("try again")
			}
			return calls, nil
		})
	})
	res := run(fns, tempesttest.Case{})
	fmt.Println("output", string(res.Output), "attempts", len(res.Steps[0].Attempts), "waited ≥ 45s:", res.Duration >= 45*time.Second)
	// Output: output 3 attempts 3 waited ≥ 45s: true
}

// A NonRetriable error ends the step at once; the handler gets a *adapter.StepError and
// may recover or fail the run with it.
func ExampleRun_nonRetriable() {
	fns := define(adapter.FunctionOpts{ID: "fn", Retries: adapter.Ptr(5)}, func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
		_, err := step.Run(ctx, "validate", func(ctx context.Context) (bool, error) {
			return false, adapter.NonRetriable(errors.New("the order has no items"))
		})
		var se *adapter.StepError
		if errors.As(err, &se) {
			return "rejected: " + se.Message, nil
		}
		return "accepted", err
	})
	res := run(fns, tempesttest.Case{})
	fmt.Println(string(res.Output), len(res.Steps[0].Attempts))
	// Output: "rejected: the order has no items" 1
}

// RetryAfter sets when the next attempt runs (a rate-limited API's Retry-After, say).
func ExampleRun_retryAfter() {
	fns := define(adapter.FunctionOpts{ID: "fn"}, func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
		return step.Run(ctx, "call-api", func(ctx context.Context) (string, error) {
			if step.Attempt(ctx) == 0 {
				return "", adapter.RetryAfter(10*time.Minute, errors.New("429 Too Many Requests"))
			}
			return "ok", nil
		})
	})
	res := run(fns, tempesttest.Case{})
	a := res.Steps[0].Attempts
	fmt.Println(string(res.Output), a[1].At.Sub(a[0].At) >= 10*time.Minute)
	// Output: "ok" true
}

// A sleep is a durable timer: the run holds no worker while it waits.
func ExampleSleep() {
	fns := define(adapter.FunctionOpts{ID: "fn"}, func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
		if err := step.Sleep(ctx, "wait-a-day", 24*time.Hour); err != nil {
			return nil, err
		}
		return "next day", nil
	})
	res := run(fns, tempesttest.Case{})
	fmt.Println(string(res.Output), res.Steps[0].Op, res.Duration)
	// Output: "next day" sleep 24h0m0s
}

// WaitForEvent with Match takes the first "demo/approved" whose data.user equals the
// triggering event's; without one before the timeout it returns ErrEventNotReceived.
func ExampleWaitForEvent() {
	fns := define(adapter.FunctionOpts{ID: "fn"}, func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
		ev, err := step.WaitForEvent[adapter.Event](ctx, "approval", step.WaitForEventOpts{
			Event: "demo/approved", Match: "data.user", Timeout: 48 * time.Hour,
		})
		if errors.Is(err, step.ErrEventNotReceived) {
			return "expired", nil
		}
		if err != nil {
			return nil, err
		}
		return fmt.Sprintf("approved by %s", ev.Data["by"]), nil
	})
	approved := run(fns, tempesttest.Case{Waits: map[string]adapter.Event{
		"approval": {Name: "demo/approved", Data: map[string]any{"user": "u-1", "by": "ana"}},
	}})
	otherUser := run(fns, tempesttest.Case{Waits: map[string]adapter.Event{
		"approval": {Name: "demo/approved", Data: map[string]any{"user": "u-2", "by": "bo"}},
	}})
	fmt.Println(string(approved.Output), string(otherUser.Output), otherUser.Duration)
	// Output: "approved by ana" "expired" 48h0m0s
}

// Invoke runs another function (of any app of the environment) as a child run and returns
// its output; the test answers for it.
func ExampleInvoke() {
	fns := define(adapter.FunctionOpts{ID: "fn"}, func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
		score, err := step.Invoke[int](ctx, "score", step.InvokeOpts{FunctionID: "risk-score", Data: map[string]any{"user": in.Event.Data["user"]}})
		if err != nil {
			return nil, err
		}
		return score * 2, nil
	})
	res := run(fns, tempesttest.Case{Invokes: map[string]tempesttest.Answer{"risk-score": tempesttest.Return(21)}})
	fmt.Println(string(res.Output), res.Invoked[0].FunctionID, res.Invoked[0].Data["user"])
	// Output: 42 risk-score u-1
}

// SendEvent sends events as a step: a retried run never sends them twice, and they fan out
// to every function they trigger.
func ExampleSendEvent() {
	fns := define(adapter.FunctionOpts{ID: "fn"}, func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
		_, err := step.SendEvent(ctx, "welcome", adapter.Event{Name: "demo/welcome.requested", Data: map[string]any{"user": in.Event.Data["user"]}})
		return nil, err
	})
	res := run(fns, tempesttest.Case{})
	fmt.Println(res.Sent[0].Name, res.Sent[0].Data["user"])
	// Output: demo/welcome.requested u-1
}

// Fetch is a durable HTTP request; the test answers it like any step.
func ExampleFetch() {
	fns := define(adapter.FunctionOpts{ID: "fn"}, func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
		resp, err := step.Fetch[map[string]any](ctx, "profile", step.FetchOpts{URL: "https://api.example.com/users/u-1"})
		if err != nil {
			return nil, err
		}
		return fmt.Sprintf("%d %s", resp.StatusCode, resp.Body["name"]), nil
	})
	res := run(fns, tempesttest.Case{Steps: map[string][]tempesttest.Answer{
		"profile": {tempesttest.Response(200, `{"name": "Ana"}`)},
	}})
	fmt.Println(string(res.Output))
	// Output: "200 Ana"
}
