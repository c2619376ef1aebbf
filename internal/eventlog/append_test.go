package eventlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendGet(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t)
		ctx := context.Background()
		rec := withClient(ev("shop/order.created"), "order-1")
		rec.ReceivedAt = time.Date(2026, 1, 2, 3, 4, 5, 678_901_234, time.UTC)
		out := mustAppend(t, l, "prod", rec)
		if !out[0].New || out[0].InternalID != rec.InternalID {
			t.Fatalf("Append = %+v, want new %s", out[0], rec.InternalID)
		}
		got, err := l.Get(ctx, "prod", rec.InternalID)
		if err != nil {
			t.Fatal(err)
		}
		want := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
		if got.Seq <= 0 || got.InternalID != rec.InternalID || got.ClientID != "order-1" || got.Name != rec.Name ||
			!bytes.Equal(got.Event, rec.Event) || !got.ReceivedAt.Equal(want) || got.DispatchedAt != nil ||
			got.Runs != nil || got.Reason != "" {
			t.Fatalf("Get = %+v", got)
		}
		if got.ReceivedAt.Location() != time.UTC {
			t.Errorf("ReceivedAt in %v, want UTC", got.ReceivedAt.Location())
		}

		// Zero ReceivedAt is the log's clock; no client id stays "".
		plain := ev("shop/plain")
		mustAppend(t, l, "prod", plain)
		got, err = l.Get(ctx, "prod", plain.InternalID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.ReceivedAt.Equal(s.clock.Now()) || got.ClientID != "" {
			t.Fatalf("Get = %+v, want received at %v without client id", got, s.clock.Now())
		}

		for _, c := range []struct{ env, id string }{{"dev", rec.InternalID}, {"prod", newID()}} {
			if _, err := l.Get(ctx, c.env, c.id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%s, %s) error = %v, want ErrNotFound", c.env, c.id, err)
			}
		}
		if n, err := l.Pending(ctx, "prod"); err != nil || n != 2 {
			t.Errorf("Pending = %d, %v; want 2", n, err)
		}
		if out := mustAppend(t, l, "prod"); len(out) != 0 {
			t.Errorf("empty Append = %v", out)
		}
	})
}

// An event appended already dispatched is one write: listed with its outcome, never
// pending or claimed; a retry of it finds the logged event and changes nothing.
func TestAppendDispatched(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t)
		ctx := context.Background()
		at := s.clock.Now().Add(-time.Second)
		started, none := ev("inngest/function.finished"), ev("inngest/function.finished")
		started.DispatchedAt, started.Runs = &at, []string{"run-1", "run-2"}
		none.DispatchedAt, none.Reason = &at, "no matching function"
		plain := ev("shop/plain")
		mustAppend(t, l, "prod", started, plain, none)
		for _, want := range []Record{started, none} {
			got, err := l.Get(ctx, "prod", want.InternalID)
			if err != nil {
				t.Fatal(err)
			}
			if got.DispatchedAt == nil || !got.DispatchedAt.Equal(at) || fmt.Sprint(got.Runs) != fmt.Sprint(want.Runs) || got.Reason != want.Reason {
				t.Fatalf("Get = %+v, want dispatched at %v with runs %v reason %q", got, at, want.Runs, want.Reason)
			}
		}
		if n, err := l.Pending(ctx, "prod"); err != nil || n != 1 {
			t.Errorf("Pending = %d, %v; want 1 (the plain event)", n, err)
		}
		s.clock.Advance(time.Hour + time.Second)
		got, err := l.Claim(ctx, "prod", 10, s.far())
		if err != nil || len(got) != 1 || got[0].InternalID != plain.InternalID {
			t.Fatalf("Claim = %+v, %v; want only the plain event", got, err)
		}
		retry := started
		retry.Runs = []string{"other"}
		if out := mustAppend(t, l, "prod", retry); out[0].New {
			t.Fatalf("a retried append wrote the event again: %+v", out)
		}
		if got, _ := l.Get(ctx, "prod", started.InternalID); fmt.Sprint(got.Runs) != "[run-1 run-2]" {
			t.Errorf("a retried append changed the runs to %v", got.Runs)
		}
	})
}

func TestDedupClientID(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t)
		first := withClient(ev("a"), "c1")
		mustAppend(t, l, "prod", first)

		// A later request with the same client id (a new internal id).
		out := mustAppend(t, l, "prod", withClient(ev("a"), "c1"), withClient(ev("a"), "c2"))
		if out[0] != (Appended{InternalID: first.InternalID}) || !out[1].New {
			t.Fatalf("Append = %+v, want the first event's id, then a new one", out)
		}
		// Twice in one call: one row, both get the first one's id.
		a, b := withClient(ev("a"), "c3"), withClient(ev("a"), "c3")
		out = mustAppend(t, l, "prod", a, b)
		if out[0] != (Appended{InternalID: a.InternalID, New: true}) || out[1] != (Appended{InternalID: a.InternalID}) {
			t.Fatalf("Append = %+v, want %s new then the same id not new", out, a.InternalID)
		}
		// The same client id in another environment is another event.
		if out := mustAppend(t, l, "dev", withClient(ev("a"), "c1")); !out[0].New {
			t.Fatalf("Append in dev = %+v, want new", out)
		}
		if n := count(t, l); n != 4 {
			t.Fatalf("%d rows, want 4 (c1, c2, c3 in prod, c1 in dev)", n)
		}
	})
}

func TestDedupInternalID(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t)
		rec := ev("a")
		mustAppend(t, l, "prod", rec)
		retry := rec
		retry.Event = []byte(`{"retried":true}`)
		out := mustAppend(t, l, "prod", retry, retry)
		for _, o := range out {
			if o != (Appended{InternalID: rec.InternalID}) {
				t.Fatalf("retried Append = %+v, want %s not new", out, rec.InternalID)
			}
		}
		got, err := l.Get(context.Background(), "prod", rec.InternalID)
		if err != nil || !bytes.Equal(got.Event, rec.Event) {
			t.Fatalf("Get = %+v, %v: want the first write kept", got, err)
		}
		if n := count(t, l); n != 1 {
			t.Fatalf("%d rows, want 1", n)
		}
	})
}

func TestDedupWindowExpiry(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t, func(o *Options) { o.DedupWindow = time.Hour })
		old := withClient(ev("a"), "c")
		mustAppend(t, l, "prod", old)

		s.clock.Advance(time.Hour - time.Millisecond)
		if out := mustAppend(t, l, "prod", withClient(ev("a"), "c")); out[0].New || out[0].InternalID != old.InternalID {
			t.Fatalf("inside the window: %+v, want %s", out, old.InternalID)
		}
		s.clock.Advance(time.Millisecond)
		fresh := withClient(ev("a"), "c")
		if out := mustAppend(t, l, "prod", fresh); !out[0].New {
			t.Fatalf("at the window's end: %+v, want a new event", out)
		}
		// The new event holds the key now; the old one is still listed.
		if out := mustAppend(t, l, "prod", withClient(ev("a"), "c")); out[0].InternalID != fresh.InternalID {
			t.Fatalf("after renewal: %+v, want %s", out, fresh.InternalID)
		}
		got, err := l.Get(context.Background(), "prod", old.InternalID)
		if err != nil || got.ClientID != "c" {
			t.Fatalf("old event: %+v, %v", got, err)
		}
		if n := count(t, l); n != 2 {
			t.Fatalf("%d rows, want 2", n)
		}
	})
}

// Two Logs (two processes) append the same client ids from many goroutines at once, in
// different orders: one row per id, and every caller gets its id.
func TestDedupConcurrent(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		logs := []*Log{s.open(t), s.open(t)}
		const ids, workers = 10, 20
		type result struct {
			client string
			out    Appended
		}
		results := make(chan result, len(logs)*workers*ids)
		var wg sync.WaitGroup
		for _, l := range logs {
			for w := range workers {
				wg.Go(func() {
					order := rand.Perm(ids)
					var recs []Record
					for _, i := range order {
						recs = append(recs, withClient(ev("a"), fmt.Sprintf("client-%d", i)))
					}
					// Half send one request, half one request per event.
					var outs []Appended
					if w%2 == 0 {
						out, err := l.Append(context.Background(), "prod", recs, s.far())
						if err != nil {
							t.Error(err)
							return
						}
						outs = out
					} else {
						for _, r := range recs {
							out, err := l.Append(context.Background(), "prod", []Record{r}, s.far())
							if err != nil {
								t.Error(err)
								return
							}
							outs = append(outs, out...)
						}
					}
					for k, o := range outs {
						results <- result{recs[k].ClientID, o}
					}
				})
			}
		}
		wg.Wait()
		close(results)
		byClient, news := map[string]string{}, map[string]int{}
		for r := range results {
			if prev, ok := byClient[r.client]; ok && prev != r.out.InternalID {
				t.Errorf("%s: ids %s and %s", r.client, prev, r.out.InternalID)
			}
			byClient[r.client] = r.out.InternalID
			if r.out.New {
				news[r.client]++
			}
		}
		for i := range ids {
			c := fmt.Sprintf("client-%d", i)
			if news[c] != 1 {
				t.Errorf("%s written %d times, want once", c, news[c])
			}
		}
		if n := count(t, logs[0]); n != ids {
			t.Fatalf("%d rows, want %d", n, ids)
		}
	})
}

// Concurrent calls share transactions, and a caller that gives up while queued is left out
// without failing the others. The first transaction is held until all calls are queued, so
// the grouping does not depend on timing.
func TestGroupCommit(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t)
		entered, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		l.w.beforeTx = func() { once.Do(func() { close(entered); <-release }) }

		const calls = 64
		recs := make([]Record, calls)
		for i := range recs {
			recs[i] = ev("a")
		}
		errs := make([]error, calls)
		var wg sync.WaitGroup
		append1 := func(ctx context.Context, i int) {
			wg.Go(func() { _, errs[i] = l.Append(ctx, "prod", recs[i:i+1], s.far()) })
		}
		append1(context.Background(), 0)
		<-entered
		ctx, cancel := context.WithCancel(context.Background())
		append1(ctx, 1)
		for i := 2; i < calls; i++ {
			append1(context.Background(), i)
		}
		for len(l.w.calls) < calls-1 { // no sleep: the calls are on their way into the queue
			runtime.Gosched()
		}
		cancel()
		close(release)
		wg.Wait()

		if !errors.Is(errs[1], context.Canceled) {
			t.Errorf("canceled call: %v, want context.Canceled", errs[1])
		}
		for i, err := range errs {
			if i != 1 && err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		}
		if _, err := l.Get(context.Background(), "prod", recs[1].InternalID); !errors.Is(err, ErrNotFound) {
			t.Errorf("canceled call's event: %v, want not written", err)
		}
		if n := count(t, l); n != calls-1 {
			t.Errorf("%d rows, want %d", n, calls-1)
		}
		if l.w.txns != 2 {
			t.Errorf("%d calls took %d transactions, want 2 (the held one, then the rest together)", calls, l.w.txns)
		}
	})
}

// Without holding anything: 64 concurrent calls all succeed, in fewer transactions.
func TestGroupCommitUnheld(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t)
		const calls = 64
		var wg sync.WaitGroup
		for range calls {
			wg.Go(func() {
				if _, err := l.Append(context.Background(), "prod", []Record{ev("a")}, s.far()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := count(t, l); n != calls {
			t.Errorf("%d rows, want %d", n, calls)
		}
		t.Logf("%d concurrent calls took %d transactions", calls, l.w.txns)
	})
}

func TestMaxBatch(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t, func(o *Options) { o.MaxBatch = 3 })
		recs := []Record{ev("a"), ev("a"), ev("a"), ev("a"), ev("a")}
		// A call over MaxBatch is still one (atomic) transaction.
		if out := mustAppend(t, l, "prod", recs...); len(out) != 5 || l.w.txns != 1 {
			t.Fatalf("Append = %v in %d transactions", out, l.w.txns)
		}
	})
}

func TestNastyInput(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t)
		ctx := context.Background()
		big := []byte(`{"data":{"blob":"` + strings.Repeat("x\\\"'é😀", 1<<20/10) + `"}}`)
		names := []string{`quote"d`, `it's`, "ünïcødé/事件", "emoji/😀", `back\slash`, "'; DROP TABLE tempest_events; --", strings.Repeat("n", 256)}
		var recs []Record
		for i, n := range names {
			r := withClient(ev(n), fmt.Sprintf("id\x00with NUL %d \xff not UTF-8", i))
			recs = append(recs, r)
		}
		recs[0].Event = big
		mustAppend(t, l, "env \"quoted\" ü", recs...)
		for _, r := range recs {
			got, err := l.Get(ctx, "env \"quoted\" ü", r.InternalID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != r.Name || got.ClientID != r.ClientID || !bytes.Equal(got.Event, r.Event) {
				t.Errorf("round trip of %q: name %q client %q event %d bytes", r.Name, got.Name, got.ClientID, len(got.Event))
			}
			list, err := l.List(ctx, "env \"quoted\" ü", Filter{Name: r.Name})
			if err != nil || len(list) != 1 || list[0].InternalID != r.InternalID {
				t.Errorf("List by name %q = %d events, %v", r.Name, len(list), err)
			}
		}
		// The client ids (any bytes) dedup too.
		if out := mustAppend(t, l, "env \"quoted\" ü", withClient(ev("x"), recs[3].ClientID)); out[0].InternalID != recs[3].InternalID {
			t.Errorf("dedup of a binary client id: %+v", out)
		}

		for _, bad := range []struct {
			env string
			rec Record
		}{
			{"prod", Record{InternalID: newID(), Name: "nul\x00name"}},
			{"prod", Record{InternalID: newID(), Name: "bad \xff utf-8"}},
			{"prod", Record{InternalID: strings.ToLower(newID()), Name: "a"}},
			{"prod", Record{InternalID: "not-a-ulid", Name: "a"}},
			{"nul\x00env", ev("a")},
		} {
			if _, err := l.Append(ctx, bad.env, []Record{bad.rec}, time.Time{}); !errors.Is(err, ErrInvalid) {
				t.Errorf("Append(%q, %+v) error = %v, want ErrInvalid", bad.env, bad.rec, err)
			}
		}
	})
}

func TestAppendAfterClose(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(context.Background(), "prod", []Record{ev("a")}, time.Time{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Append after Close: %v, want ErrClosed", err)
		}
	})
}
