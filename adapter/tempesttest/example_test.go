package tempesttest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/adapter/tempesttest"
)

type order struct {
	ID    string  `json:"id"`
	Total float64 `json:"total"`
}

// checkout charges an order, retrying a failed charge, then emails a receipt.
func checkout(fns *adapter.Functions) {
	_, err := adapter.CreateFunction(fns, adapter.FunctionOpts{ID: "checkout", Retries: adapter.Ptr(2)},
		adapter.EventTrigger("shop/order.placed", nil),
		func(ctx context.Context, in adapter.Input[order]) (any, error) {
			charge, err := step.Run(ctx, "charge", func(ctx context.Context) (string, error) {
				return "", errors.New("the payment provider is down") // the test answers instead
			})
			if err != nil {
				return nil, err
			}
			if err := step.Sleep(ctx, "cool-off", time.Hour); err != nil {
				return nil, err
			}
			if _, err := step.SendEvent(ctx, "receipt", adapter.Event{Name: "shop/receipt.requested",
				Data: map[string]any{"order": in.Event.Data.ID, "charge": charge}}); err != nil {
				return nil, err
			}
			return map[string]any{"charged": charge}, nil
		})
	if err != nil {
		panic(err)
	}
}

// A function test: the charge step fails once and then succeeds (answered by the test, so
// the body does not run); the retry waits the real backoff and the sleep its hour, in
// virtual time.
func Example() {
	fns := adapter.NewFunctions("shop")
	checkout(fns)

	res, err := tempesttest.Run(fns, "checkout", tempesttest.Case{
		Events: []adapter.Event{{Name: "shop/order.placed", Data: map[string]any{"id": "o-1", "total": 42}}},
		Steps: map[string][]tempesttest.Answer{
			"charge": {tempesttest.Fail(errors.New("card declined")), tempesttest.Return("ch_1")},
		},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("output:", string(res.Output), "error:", res.Err)
	for _, s := range res.Steps {
		fmt.Printf("%s %s: %d attempt(s)\n", s.Op, s.ID, len(s.Attempts))
	}
	fmt.Println("sent:", res.Sent[0].Name, res.Sent[0].Data["charge"])
	fmt.Println("took at least an hour:", res.Duration >= time.Hour)
	// Output:
	// output: {"charged":"ch_1"} error: <nil>
	// run charge: 2 attempt(s)
	// sleep cool-off: 1 attempt(s)
	// run receipt: 1 attempt(s)
	// sent: shop/receipt.requested ch_1
	// took at least an hour: true
}
