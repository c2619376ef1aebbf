// Package examples holds the functions `tempest dev` serves: small, one feature each, and
// written the way a user would write their own.
package examples

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
)

// HelloData is the data of a demo/hello.world event.
type HelloData struct {
	Name string `json:"name"`
}

// Hello runs on demo/hello.world: two steps around a one-second sleep.
func Hello(ctx context.Context, in adapter.Input[HelloData]) (any, error) {
	name, err := step.Run(ctx, "get-name", func(ctx context.Context) (string, error) {
		if in.Event.Data.Name == "" {
			return "world", nil
		}
		return in.Event.Data.Name, nil
	})
	if err != nil {
		return nil, err
	}
	if err := step.Sleep(ctx, "wait-a-moment", time.Second); err != nil {
		return nil, err
	}
	msg, err := step.Run(ctx, "greet", func(ctx context.Context) (string, error) {
		return fmt.Sprintf("Hello %s!", name), nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"message": msg}, nil
}

// ChargeData is the data of a demo/charge.requested event.
type ChargeData struct {
	Amount int `json:"amount"`
	// FailTimes makes the payment step fail this many times before it succeeds.
	FailTimes int `json:"fail_times"`
}

// Charge runs on demo/charge.requested and shows retries: the "charge" step fails
// FailTimes times, asking to be retried after one second each time; an amount of zero
// or less is a non-retriable error that the handler turns into a result.
func Charge(ctx context.Context, in adapter.Input[ChargeData]) (any, error) {
	receipt, err := step.Run(ctx, "charge", func(ctx context.Context) (string, error) {
		if in.Event.Data.Amount <= 0 {
			return "", adapter.NonRetriable(errors.New("amount must be positive"))
		}
		if n := step.Attempt(ctx); n < in.Event.Data.FailTimes {
			return "", adapter.RetryAfter(time.Second, fmt.Errorf("payment provider busy (attempt %d)", n+1))
		}
		return fmt.Sprintf("charged %d after %d attempt(s)", in.Event.Data.Amount, step.Attempt(ctx)+1), nil
	})
	var stepErr *adapter.StepError
	if errors.As(err, &stepErr) {
		return map[string]string{"status": "rejected", "reason": stepErr.Message}, nil
	}
	if err != nil {
		return nil, err
	}
	return map[string]string{"status": "charged", "receipt": receipt}, nil
}

// Register adds the examples to app (a running *adapter.App, or *adapter.Functions).
func Register(app adapter.Registrar) error {
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "hello-world", Name: "Hello world"},
		adapter.EventTrigger("demo/hello.world", nil), Hello); err != nil {
		return err
	}
	_, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "charge", Name: "Charge with retries", Retries: adapter.Ptr(3)},
		adapter.EventTrigger("demo/charge.requested", nil), Charge)
	return err
}
