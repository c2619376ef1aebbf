package adapter

import (
	"context"

	"github.com/tempestrun/tempest/flowcontrol"
)

// StartRunForTest flushes a claimed buffer as the flusher would, for crash tests.
func (a *App) StartRunForTest(ctx context.Context, c flowcontrol.Flush) error {
	f, _ := a.routed(c.Function)
	return a.startFlush(ctx, f, c)
}

// FailStartsForTest makes the next n starts of function slug's runs fail after admission,
// as a crash or an unreachable Temporal between the Redis decision and the start would.
func FailStartsForTest(slug string, n int) {
	startFaults.Store(slug, &faultCounter{left: int32(n)})
}

// RoutedForTest lists the fully qualified ids this process routes events to.
func (a *App) RoutedForTest() []string {
	var out []string
	for slug := range a.routes.Load().bySlug {
		out = append(out, slug)
	}
	return out
}
