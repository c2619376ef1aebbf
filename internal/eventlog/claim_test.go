package eventlog

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

func ids(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.InternalID
	}
	return out
}

func appendLeased(t *testing.T, l *Log, env string, until time.Time, recs ...Record) []string {
	t.Helper()
	if _, err := l.Append(context.Background(), env, recs, until); err != nil {
		t.Fatal(err)
	}
	return ids(recs)
}

func TestClaim(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t)
		ctx := context.Background()
		now := s.clock.Now()
		leased := appendLeased(t, l, "prod", now.Add(time.Minute), ev("a"), ev("a"))
		free := appendLeased(t, l, "prod", now, ev("a"), ev("a"), ev("a")) // expires now
		appendLeased(t, l, "dev", now, ev("a"))

		got, err := l.Claim(ctx, "prod", 2, now.Add(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), free[:2]) {
			t.Fatalf("Claim = %v, want the expired %v, oldest first", ids(got), free[:2])
		}
		if got, _ = l.Claim(ctx, "prod", 10, now.Add(30*time.Second)); !slices.Equal(ids(got), free[2:]) {
			t.Fatalf("second Claim = %v, want %v", ids(got), free[2:])
		}
		if got, _ = l.Claim(ctx, "prod", 10, now.Add(time.Hour)); len(got) != 0 {
			t.Fatalf("Claim while every lease holds = %v", ids(got))
		}

		// Past the claims' lease, not yet past the appender's.
		s.clock.Advance(30 * time.Second)
		if got, _ = l.Claim(ctx, "prod", 10, now.Add(time.Hour)); !slices.Equal(ids(got), free) {
			t.Fatalf("Claim after the claims' lease = %v, want %v", ids(got), free)
		}
		s.clock.Advance(time.Hour)
		got, err = l.Claim(ctx, "prod", 10, s.far())
		if err != nil {
			t.Fatal(err)
		}
		if want := append(slices.Clone(leased), free...); !slices.Equal(ids(got), want) {
			t.Fatalf("Claim after every lease = %v, want %v in log order", ids(got), want)
		}
		if got, _ := l.Claim(ctx, "prod", 0, s.far()); len(got) != 0 {
			t.Fatalf("Claim(limit 0) = %v", ids(got))
		}
	})
}

// Two Logs with several goroutines each claim until nothing is left: every event exactly
// once, since the leases outlast the test.
func TestClaimConcurrent(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		logs := []*Log{s.open(t), s.open(t)}
		const n = 300
		recs := make([]Record, n)
		for i := range recs {
			recs[i] = ev("a")
		}
		appendLeased(t, logs[0], "prod", time.Time{}, recs...)
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for _, l := range logs {
			for range 4 {
				wg.Go(func() {
					for {
						got, err := l.Claim(context.Background(), "prod", 7, s.far())
						if err != nil {
							t.Error(err)
							return
						}
						if len(got) == 0 {
							return
						}
						mu.Lock()
						for _, r := range got {
							seen[r.InternalID]++
						}
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		if len(seen) != n {
			t.Errorf("%d events claimed, want %d", len(seen), n)
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("%s claimed %d times", id, c)
			}
		}
	})
}

func TestRetry(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t)
		ctx := context.Background()
		a, b := ev("a"), ev("a")
		appendLeased(t, l, "prod", s.far(), a, b)
		if err := l.Dispatched(ctx, []Dispatch{{InternalID: b.InternalID, Reason: "no function"}}); err != nil {
			t.Fatal(err)
		}
		if err := l.Retry(ctx, []string{a.InternalID, b.InternalID, newID()}, s.clock.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if got, _ := l.Claim(ctx, "prod", 10, s.far()); len(got) != 0 {
			t.Fatalf("Claim before the retry time = %v", ids(got))
		}
		s.clock.Advance(time.Second)
		got, err := l.Claim(ctx, "prod", 10, s.far())
		if err != nil || !slices.Equal(ids(got), []string{a.InternalID}) {
			t.Fatalf("Claim at the retry time = %v, %v; want only the undispatched %s", ids(got), err, a.InternalID)
		}
		if err := l.Retry(ctx, nil, s.clock.Now()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDispatched(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t)
		ctx := context.Background()
		a, b, c := ev("a"), ev("a"), ev("a")
		appendLeased(t, l, "prod", time.Time{}, a, b, c)
		ds := []Dispatch{
			{InternalID: a.InternalID, Runs: []string{"run-1", "run-2"}},
			{InternalID: b.InternalID, Reason: "rate limited"},
			{InternalID: newID(), Reason: "deleted meanwhile"},
		}
		if err := l.Dispatched(ctx, ds); err != nil {
			t.Fatal(err)
		}
		first := s.clock.Now()
		s.clock.Advance(time.Minute)
		if err := l.Dispatched(ctx, ds); err != nil { // idempotent
			t.Fatal(err)
		}
		got, err := l.Claim(ctx, "prod", 10, s.far())
		if err != nil || !slices.Equal(ids(got), []string{c.InternalID}) {
			t.Fatalf("Claim = %v, %v; want only the undispatched %s", ids(got), err, c.InternalID)
		}
		if n, err := l.Pending(ctx, "prod"); err != nil || n != 1 {
			t.Errorf("Pending = %d, %v; want 1", n, err)
		}
		ra, _ := l.Get(ctx, "prod", a.InternalID)
		rb, _ := l.Get(ctx, "prod", b.InternalID)
		if !slices.Equal(ra.Runs, []string{"run-1", "run-2"}) || ra.Reason != "" || ra.DispatchedAt == nil || !ra.DispatchedAt.Equal(first) {
			t.Errorf("dispatched a = %+v, want runs at %v", ra, first)
		}
		if rb.Runs != nil || rb.Reason != "rate limited" || rb.DispatchedAt == nil {
			t.Errorf("dispatched b = %+v", rb)
		}
		// Recording again overwrites; the last of an id given twice counts.
		if err := l.Dispatched(ctx, []Dispatch{{InternalID: b.InternalID, Reason: "x"}, {InternalID: b.InternalID, Runs: []string{"run-3"}}}); err != nil {
			t.Fatal(err)
		}
		rb, _ = l.Get(ctx, "prod", b.InternalID)
		if !slices.Equal(rb.Runs, []string{"run-3"}) || rb.Reason != "" || !rb.DispatchedAt.Equal(first) {
			t.Errorf("redispatched b = %+v", rb)
		}
	})
}
