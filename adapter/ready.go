package adapter

import (
	"context"
	"sync"

	"go.temporal.io/sdk/client"

	"github.com/tempestrun/tempest/api"
)

// Ready checks, at the same time, that Redis and the Temporal frontend answer within ctx
// (GET /ready).
func (a *App) Ready(ctx context.Context) []api.Check {
	checks := []api.Check{{Name: "redis"}, {Name: "temporal"}}
	var wg sync.WaitGroup
	wg.Go(func() { checks[0].Err = a.redis.Ping(ctx).Err() })
	wg.Go(func() {
		_, err := a.temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
		checks[1].Err = err
	})
	wg.Wait()
	return checks
}
