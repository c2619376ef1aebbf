package flowcontrol_test

import (
	"context"
	"testing"
	"time"

	"github.com/tempestrun/tempest/flowcontrol"
)

// The gate is the throttle's GCRA where runs begin: a backlog is spaced, a run on time for
// its scheduled slot passes at once (its slot was already spaced), and a retried check of
// a run that passed passes again without a second slot.
func TestThrottleGate(t *testing.T) {
	t.Parallel()
	rdb := redisClient(t)
	ctx := context.Background()
	g := flowcontrol.Gate{Function: fn(t), Limit: 1, PeriodMS: 1000}
	t0 := time.UnixMilli(time.Now().UnixMilli())
	pass := func(at time.Time, run string, slot time.Time) time.Duration {
		t.Helper()
		g := g
		if !slot.IsZero() {
			g.SlotMS = slot.UnixMilli()
		}
		wait, err := flowcontrol.PassGate(ctx, rdb, at, g, run)
		if err != nil {
			t.Fatal(err)
		}
		return wait
	}
	if w := pass(t0, "a", time.Time{}); w != 0 {
		t.Fatalf("the first run waits %s", w)
	}
	// A backlog (no slot, or long past it): the next may begin one second after.
	if w := pass(t0.Add(10*time.Millisecond), "b", t0.Add(-time.Minute)); w != 990*time.Millisecond {
		t.Fatalf("a late run waits %s, want 990ms", w)
	}
	if w := pass(t0.Add(10*time.Millisecond), "a", time.Time{}); w != 0 {
		t.Fatalf("a retried check of a run that passed waits %s", w)
	}
	// On time for its slot (t0+990ms, arriving 5 ms after), though the gate's TAT is later
	// than that by the first run's dispatch: it passes.
	if w := pass(t0.Add(995*time.Millisecond), "c", t0.Add(990*time.Millisecond)); w != 0 {
		t.Fatalf("a run on time for its slot waits %s", w)
	}
	// The slot it took counts: a late run now waits for the one after.
	if w := pass(t0.Add(1000*time.Millisecond), "d", t0.Add(-time.Minute)); w < 900*time.Millisecond {
		t.Fatalf("after an on-time pass, a late run waits only %s", w)
	}
}
