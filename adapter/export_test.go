package adapter

import (
	"context"

	"github.com/tempestrun/tempest/flowcontrol"
)

// StartRunForTest flushes a claimed buffer as the flusher would, for crash tests.
func (a *App) StartRunForTest(ctx context.Context, c flowcontrol.Flush) error {
	a.mu.RLock()
	f := a.functions[c.Function]
	a.mu.RUnlock()
	return a.startFlush(ctx, f, c)
}

// FailStartsForTest makes the next n starts of function slug's runs fail after admission,
// as a crash or an unreachable Temporal between the Redis decision and the start would.
func FailStartsForTest(slug string, n int) {
	startFaults.Store(slug, &faultCounter{left: int32(n)})
}
