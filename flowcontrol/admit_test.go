package flowcontrol_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tempestrun/tempest/flowcontrol"
)

// clock is an injectable time source the tests move by hand.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().Truncate(time.Millisecond).UnixNano()) // the admitter counts whole ms
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func fn(t testing.TB) string             { return fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()) }
func runID(i int) string                 { return fmt.Sprintf("run-%06d", i) }

// admit runs one admission through the stages its options name: rate limit, then throttle.
func admit(ctx context.Context, a *flowcontrol.Admitter, req flowcontrol.Admission) (flowcontrol.Decision, error) {
	stage := a.RateLimit
	if req.Throttle != nil {
		stage = a.Throttle
	}
	out, err := stage(ctx, []flowcontrol.Admission{req})
	if err != nil {
		return flowcontrol.Decision{}, err
	}
	return out[0], nil
}

func TestRateLimitIsGCRAWithImplicitBurst(t *testing.T) {
	t.Parallel()
	c := newClock()
	a := flowcontrol.NewAdmitter(redisClient(t), c.now)
	ctx := context.Background()
	f := fn(t)
	rl := &flowcontrol.GCRA{Limit: 10, Period: time.Minute, Burst: flowcontrol.RateLimitBurst(10)}
	admitted := 0
	n := 0
	send := func(k int) {
		for range k {
			d, err := admit(ctx, a, flowcontrol.Admission{Function: f, RunID: runID(n), RateLimit: rl})
			n++
			if err != nil {
				t.Fatal(err)
			}
			if d.Outcome == flowcontrol.Admitted {
				admitted++
			}
		}
	}
	send(50)
	if admitted != 2 { // floor(10/10) burst + 1, as Inngest documents
		t.Fatalf("50 simultaneous events: %d admitted, want 2", admitted)
	}
	// Over T, never more than burst + 1 + rate*T.
	for step := 1; step <= 30; step++ {
		c.advance(2 * time.Second)
		send(5)
		elapsed := time.Duration(step) * 2 * time.Second
		if limit := 2 + int(elapsed/(6*time.Second)); admitted > limit {
			t.Fatalf("after %s: %d admitted, more than %d", elapsed, admitted, limit)
		}
	}
	if admitted != 2+10 { // 60 s at 1 per 6 s
		t.Fatalf("after 60 s: %d admitted, want 12", admitted)
	}
}

func TestThrottleStartTimesFollowGCRA(t *testing.T) {
	t.Parallel()
	c := newClock()
	a := flowcontrol.NewAdmitter(redisClient(t), c.now)
	ctx := context.Background()
	t0 := c.now()
	cases := []struct {
		g    flowcontrol.GCRA
		want []time.Duration
	}{
		{flowcontrol.GCRA{Limit: 2, Period: 10 * time.Second, Burst: 1}, []time.Duration{0, 0, 0, 5 * time.Second, 10 * time.Second, 15 * time.Second}},
		{flowcontrol.GCRA{Limit: 10, Period: time.Minute}, []time.Duration{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6 * time.Second, 12 * time.Second}},
		{flowcontrol.GCRA{Limit: 1, Period: 5 * time.Second, Burst: 2}, []time.Duration{0, 0, 0, 5 * time.Second}},
	}
	for i, tc := range cases {
		f := fmt.Sprintf("%s-%d", fn(t), i)
		for j, want := range tc.want {
			g := tc.g
			d, err := admit(ctx, a, flowcontrol.Admission{Function: f, RunID: runID(j), Throttle: &g})
			if err != nil {
				t.Fatal(err)
			}
			if got := d.StartAt.Sub(t0).Round(time.Millisecond); d.Outcome != flowcontrol.Admitted || got != want {
				t.Errorf("%+v run %d: outcome %d, starts at +%s, want +%s", tc.g, j, d.Outcome, got, want)
			}
		}
	}
}

func TestRetriedDecisions(t *testing.T) {
	t.Parallel()
	a := flowcontrol.NewAdmitter(redisClient(t), nil)
	ctx := context.Background()
	f := fn(t)
	rl := &flowcontrol.GCRA{Limit: 1, Period: time.Hour}
	first, err := admit(ctx, a, flowcontrol.Admission{Function: f, RunID: "r1", RateLimit: rl})
	if err != nil || first.Outcome != flowcontrol.Admitted || first.Replayed {
		t.Fatalf("%+v %v", first, err)
	}
	// A retried ingest of the same run: the same decision, marked replayed, not counted again.
	again, _ := admit(ctx, a, flowcontrol.Admission{Function: f, RunID: "r1", RateLimit: rl})
	if !again.Replayed || again.Outcome != first.Outcome || !again.StartAt.Equal(first.StartAt) {
		t.Fatalf("retry decided %+v, first %+v", again, first)
	}
	limited, _ := admit(ctx, a, flowcontrol.Admission{Function: f, RunID: "r2", RateLimit: rl})
	if limited.Outcome != flowcontrol.RateLimited {
		t.Fatalf("want rate limited: %+v", limited)
	}
	if d, _ := admit(ctx, a, flowcontrol.Admission{Function: f, RunID: "r2", RateLimit: rl}); d.Outcome != flowcontrol.RateLimited || !d.Replayed {
		t.Fatalf("a retried rate-limited run stays dropped: %+v", d)
	}
	// Several runs in one round trip take throttle slots in order.
	g := &flowcontrol.GCRA{Limit: 1, Period: time.Minute}
	var reqs []flowcontrol.Admission
	for i := range 5 {
		reqs = append(reqs, flowcontrol.Admission{Function: f, RunID: fmt.Sprint("t", i), Throttle: g})
	}
	decs, err := a.Throttle(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(decs); i++ {
		if d := decs[i].StartAt.Sub(decs[i-1].StartAt); d < 59*time.Second || d > 61*time.Second {
			t.Fatalf("slot %d starts %s after slot %d, want 1m: %+v", i, d, i-1, decs)
		}
	}
}

// Two processes (two Redis clients) hammering one function keep every limit exact.
func TestLimitsExactAcrossProcesses(t *testing.T) {
	t.Parallel()
	c := newClock()
	procs := []*flowcontrol.Admitter{flowcontrol.NewAdmitter(redisClient(t), c.now), flowcontrol.NewAdmitter(redisClient(t), c.now)}
	ctx := context.Background()
	f := fn(t)
	var admitted, replayed, throttledLate atomic.Int64
	var wg sync.WaitGroup
	for _, a := range procs {
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					// Every sender sends the same 10 events: the run ids derive from them.
					id := fmt.Sprintf("run-of-evt-%d", i)
					d, err := admit(ctx, a, flowcontrol.Admission{Function: f, RunID: id,
						Throttle: &flowcontrol.GCRA{Limit: 5, Period: 10 * time.Second}})
					if err != nil {
						t.Error(err)
						return
					}
					switch {
					case d.Replayed:
						replayed.Add(1)
					case d.StartAt.After(c.now()):
						throttledLate.Add(1)
						admitted.Add(1)
					default:
						admitted.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	// 10 distinct runs: 10 decisions, 390 replays of them; the throttle lets 5 start now.
	if admitted.Load() != 10 || replayed.Load() != 390 || throttledLate.Load() != 5 {
		t.Fatalf("admitted %d (late %d), replayed %d", admitted.Load(), throttledLate.Load(), replayed.Load())
	}
}

// One rate-limit decision: one EVALSHA round trip that also remembers the decision.
func BenchmarkAdmit(b *testing.B) {
	a := flowcontrol.NewAdmitter(redisClient(b), nil)
	ctx := context.Background()
	f := fn(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, err := admit(ctx, a, flowcontrol.Admission{Function: f, RunID: runID(i),
			RateLimit: &flowcontrol.GCRA{Limit: 1 << 30, Period: time.Second}})
		if err != nil {
			b.Fatal(err)
		}
	}
}
