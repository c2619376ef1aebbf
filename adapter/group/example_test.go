package group_test

import (
	"context"
	"fmt"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/group"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/adapter/tempesttest"
)

// Parallel runs branches at the same time, each with its own memoized, retried steps.
func ExampleParallel() {
	fns := adapter.NewFunctions("demo")
	_, err := adapter.CreateFunction(fns, adapter.FunctionOpts{ID: "fan-out"}, adapter.EventTrigger("demo/go", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			var fns []func(ctx context.Context) (any, error)
			for _, region := range []string{"eu", "us"} {
				fns = append(fns, func(ctx context.Context) (any, error) {
					return step.Run(ctx, "price-"+region, func(ctx context.Context) (string, error) { return "price in " + region, nil })
				})
			}
			res := group.Parallel(ctx, fns...)
			if err := res.AnyError(); err != nil {
				return nil, err
			}
			return []any{res[0].Value, res[1].Value}, nil
		})
	if err != nil {
		panic(err)
	}
	res, err := tempesttest.Run(fns, "fan-out", tempesttest.Case{Events: []adapter.Event{{Name: "demo/go"}}})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(res.Output), len(res.Steps))
	// Output: ["price in eu","price in us"] 2
}
