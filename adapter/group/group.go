// Package group runs steps in parallel, shaped like inngestgo's group package.
package group

import (
	"context"
	"errors"

	"github.com/tempestrun/tempest/workflows"
)

// Result of one branch: its return value, or its error.
type Result struct {
	Value any
	Error error
}

// Results of all branches, in the order they were given.
type Results []Result

// AnyError joins the branches' errors (nil when all succeeded).
func (r Results) AnyError() error {
	var errs []error
	for _, x := range r {
		if x.Error != nil {
			errs = append(errs, x.Error)
		}
	}
	return errors.Join(errs...)
}

// Parallel runs each fn at the same time (each in its own workflow coroutine, so their
// steps execute concurrently, each memoized and retried on its own) and returns when all
// are done. Step ids must differ between branches, or they are numbered id:1, id:2, ...
// in the order the branches reach them.
func Parallel(ctx context.Context, fns ...func(ctx context.Context) (any, error)) Results {
	res, err := workflows.Parallel(ctx, fns...)
	if err != nil {
		out := make(Results, len(fns))
		for i := range out {
			out[i].Error = err
		}
		return out
	}
	out := make(Results, len(res))
	for i, r := range res {
		out[i] = Result(r)
	}
	return out
}
