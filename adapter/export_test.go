package adapter

import (
	"context"
	"time"

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

// ShortLeasesForTest makes an app's dispatch leases last lease and its claim loop look
// every claim, so that tests see leases run out and be taken over within a second.
func ShortLeasesForTest(o *Options, lease, claim time.Duration) {
	o.intakeLease, o.intakeClaimEvery = lease, claim
}

// DispatchedForTest counts the events this app's process dispatched (a second dispatch of
// the same event counts again).
func (a *App) DispatchedForTest() int64 { return a.intake.dispatched.Load() }

// SlowStartsForTest makes every start of function slug's runs wait d first, as a loaded
// Temporal would.
func SlowStartsForTest(slug string, d time.Duration) { startDelays.Store(slug, d) }
