package eventlog

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// typical is an event of about 200 bytes, as an SDK sends it.
func typical(i int, clientID bool) Record {
	r := Record{InternalID: newID(), Name: "shop/order.created"}
	id := ""
	if clientID {
		r.ClientID = fmt.Sprintf("ord_%012d", i)
		id = `"id":"` + r.ClientID + `",`
	}
	r.Event = fmt.Appendf(nil, `{"name":"shop/order.created",%s"data":{"order_id":"ord_%012d","customer":"cus_8f7a6b5c4d","amount":4999,"currency":"usd","items":3},"user":{},"ts":1767225600000,"v":"2026-01-01.1"}`, id, i)
	return r
}

func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	lease := time.Now().Add(time.Hour)
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			b.Run("1-event-32-goroutines", func(b *testing.B) {
				l := newStore(b, backend).open(b)
				b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for i := 0; pb.Next(); i++ {
						if _, err := l.Append(ctx, "prod", []Record{typical(i, false)}, lease); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
				b.ReportMetric(float64(b.N)/float64(max(1, l.w.txns)), "events/tx")
			})
			// One request at a time (an idle intake): the latency of one commit.
			b.Run("1-event-sequential", func(b *testing.B) {
				l := newStore(b, backend).open(b)
				n := 0
				for b.Loop() {
					if _, err := l.Append(ctx, "prod", []Record{typical(n, false)}, lease); err != nil {
						b.Fatal(err)
					}
					n++
				}
			})
			b.Run("500-events", func(b *testing.B) {
				l := newStore(b, backend).open(b)
				recs := make([]Record, 500)
				n := 0
				for b.Loop() {
					for i := range recs {
						recs[i] = typical(n, false)
						n++
					}
					if _, err := l.Append(ctx, "prod", recs, lease); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			})
		})
	}
}

// TestBytesPerEvent logs the disk each backend takes per typical event (about 200 bytes
// of JSON), as appended and once dispatched: table, TOAST and every index on PostgreSQL,
// the file after a checkpoint on SQLite. It asserts nothing about the figures.
func TestBytesPerEvent(t *testing.T) {
	const n = 10_000
	for _, backend := range backends {
		for _, withID := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/client-id=%v", backend, withID), func(t *testing.T) {
				t.Parallel()
				s := newStore(t, backend)
				l := s.open(t)
				ctx := context.Background()
				var ds []Dispatch
				eventBytes := 0
				for i := 0; i < n; i += 500 {
					recs := make([]Record, 500)
					for k := range recs {
						recs[k] = typical(i+k, withID)
						eventBytes += len(recs[k].Event)
						ds = append(ds, Dispatch{InternalID: recs[k].InternalID, Runs: []string{newID()}})
					}
					if _, err := l.Append(ctx, "prod", recs, s.far()); err != nil {
						t.Fatal(err)
					}
				}
				appended := diskSize(t, l, s, false)
				if err := l.Dispatched(ctx, ds); err != nil {
					t.Fatal(err)
				}
				dispatched := diskSize(t, l, s, true)
				t.Logf("%s, client id %v: %d events of %d bytes JSON on average: %.0f bytes/event appended, %.0f bytes/event dispatched with one run id (PostgreSQL: compacted)",
					backend, withID, n, eventBytes/n, float64(appended)/n, float64(dispatched)/n)
			})
		}
	}
}

// diskSize is the store's size on disk: on PostgreSQL with compact, after VACUUM FULL (an
// update leaves a dead row version that VACUUM frees for reuse but does not return, so the
// raw size after an update of every row says little), on SQLite after a checkpoint.
func diskSize(t *testing.T, l *Log, s *store, compact bool) int64 {
	t.Helper()
	var size int64
	if l.Backend() == "postgres" {
		if compact {
			if _, err := l.db.Exec(`VACUUM FULL tempest_events`); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.db.QueryRow(`SELECT pg_total_relation_size('tempest_events')`).Scan(&size); err != nil {
			t.Fatal(err)
		}
		return size
	}
	if _, err := l.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(strings.TrimPrefix(s.url, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
