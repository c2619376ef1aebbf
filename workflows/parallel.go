package workflows

import (
	"context"

	"go.temporal.io/sdk/workflow"
)

// Result is the outcome of one parallel branch.
type Result struct {
	Value any
	Error error
}

// Parallel runs each fn in its own workflow coroutine, so the steps of different branches
// execute at the same time, each memoized and retried on its own. It returns when all are
// done, with the results in the order of fns.
func Parallel(ctx context.Context, fns ...func(ctx context.Context) (any, error)) ([]Result, error) {
	st, err := stateFrom(ctx)
	if err != nil {
		return nil, err
	}
	results := make([]Result, len(fns))
	done := workflow.NewWaitGroup(st.wctx)
	for i, fn := range fns {
		done.Add(1)
		workflow.Go(st.wctx, func(bctx workflow.Context) {
			defer done.Done()
			branch := context.WithValue(ctx, stateKey{}, &runState{wctx: bctx, run: st.run})
			v, err := fn(branch)
			results[i] = Result{Value: v, Error: err}
		})
	}
	done.Wait(st.wctx)
	return results, nil
}
