package flowcontrol_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tempestrun/tempest/flowcontrol"
)

func redisClient(t testing.TB) *redis.Client {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis-server at %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func uniqueName(t testing.TB) string {
	return fmt.Sprintf("test/%s-%d", t.Name(), time.Now().UnixNano())
}

// Of many concurrent claims (events and a timeout racing), exactly one wins and every
// loser sees the winner's value.
func TestClaimIsExactlyOnce(t *testing.T) {
	t.Parallel()
	ws := flowcontrol.NewWaits(redisClient(t), nil)
	ctx := context.Background()
	name := uniqueName(t)
	w := flowcontrol.Wait{ID: "run/step", Kind: flowcontrol.KindWait, Event: name, MatchPath: "data.id", MatchValue: "u1",
		Expires: time.Now().Add(time.Minute).UnixMilli()}
	if err := ws.Register(ctx, []flowcontrol.Wait{w}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	winners, prevs := 0, map[string]int{}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, prev, err := ws.Claim(ctx, w, fmt.Sprintf("event-%d", i))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if n == flowcontrol.Claimed {
				winners++
			} else {
				prevs[prev]++
			}
		}()
	}
	wg.Wait()
	if winners != 1 || len(prevs) != 1 {
		t.Fatalf("winners=%d, losers saw %v; want one winner and one value", winners, prevs)
	}
	got, err := ws.Candidates(ctx, name, func(string) (any, bool) { return "u1", true })
	if err != nil || len(got) != 0 {
		t.Fatalf("a claimed wait is still a candidate: %v %v", got, err)
	}
	if n, _, _ := ws.Claim(ctx, flowcontrol.Wait{ID: "nope", Event: name}, "x"); n != flowcontrol.Gone {
		t.Fatalf("claim of an unknown wait = %d, want Gone", n)
	}
}

func TestCandidatesByMatchValueAndExpiry(t *testing.T) {
	t.Parallel()
	ws := flowcontrol.NewWaits(redisClient(t), nil)
	ctx := context.Background()
	name := uniqueName(t)
	exp := time.Now().Add(time.Minute).UnixMilli()
	waits := []flowcontrol.Wait{
		{ID: "a", Event: name, MatchPath: "data.id", MatchValue: "1", Expires: exp},
		{ID: "b", Event: name, MatchPath: "data.id", MatchValue: float64(1), Expires: exp}, // number 1 is not "1"
		{ID: "c", Event: name, If: "true", Expires: exp},
		{ID: "d", Event: name, MatchPath: "data.id", MatchValue: "1", Expires: time.Now().Add(-time.Second).UnixMilli()}, // expired
		{ID: "e", Event: name, MatchPath: "data.id", MatchValue: nil, Expires: exp},                                      // null: only a timeout
	}
	if err := ws.Register(ctx, waits); err != nil {
		t.Fatal(err)
	}
	got, err := ws.Candidates(ctx, name, func(p string) (any, bool) {
		if p == "data.id" {
			return "1", true
		}
		return nil, false
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, w := range got {
		ids[w.ID] = true
	}
	if len(ids) != 2 || !ids["a"] || !ids["c"] {
		t.Fatalf("candidates %v, want a and c", ids)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	m := map[string]any{"data": map[string]any{"user": map[string]any{"id": "u1"}, "n": 2.0}}
	if v, ok := flowcontrol.Lookup(m, "data.user.id"); !ok || v != "u1" {
		t.Fatal(v, ok)
	}
	if _, ok := flowcontrol.Lookup(m, "data.user.missing"); ok {
		t.Fatal("missing path found")
	}
	if _, ok := flowcontrol.Lookup(m, "data.n.x"); ok {
		t.Fatal("path through a number found")
	}
}

// Delivering one event (lookup + claim) with N other runs waiting on other values of the
// same event name. Compare waiting=0 with waiting=10000: the index makes them equal.
func BenchmarkDeliverOneEvent(b *testing.B) {
	for _, waiting := range []int{0, 10000} {
		b.Run(fmt.Sprintf("waiting=%d", waiting), func(b *testing.B) {
			ws := flowcontrol.NewWaits(redisClient(b), nil)
			ctx := context.Background()
			name := uniqueName(b)
			exp := time.Now().Add(time.Hour).UnixMilli()
			others := make([]flowcontrol.Wait, waiting)
			for i := range others {
				others[i] = flowcontrol.Wait{ID: fmt.Sprintf("other-%d", i), Event: name, MatchPath: "data.userId", MatchValue: fmt.Sprintf("u%d", i), Expires: exp}
			}
			for i := 0; i < len(others); i += 1000 {
				if err := ws.Register(ctx, others[i:min(i+1000, len(others))]); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				w := flowcontrol.Wait{ID: fmt.Sprintf("target-%d", i), Event: name, MatchPath: "data.userId", MatchValue: fmt.Sprintf("target-%d", i), Expires: exp}
				if err := ws.Register(ctx, []flowcontrol.Wait{w}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				got, err := ws.Candidates(ctx, name, func(string) (any, bool) { return w.MatchValue, true })
				if err != nil || len(got) != 1 {
					b.Fatalf("candidates %v %v", got, err)
				}
				if n, _, err := ws.Claim(ctx, got[0], "{}"); err != nil || n != flowcontrol.Claimed {
					b.Fatalf("claim %d %v", n, err)
				}
			}
		})
	}
}

// The events of one request are looked up together, each getting its own candidates.
func TestCandidatesMany(t *testing.T) {
	t.Parallel()
	ws := flowcontrol.NewWaits(redisClient(t), nil)
	ctx := context.Background()
	a, b, none := uniqueName(t)+"a", uniqueName(t)+"b", uniqueName(t)+"none"
	exp := time.Now().Add(time.Minute).UnixMilli()
	if err := ws.Register(ctx, []flowcontrol.Wait{
		{ID: "wa", Event: a, MatchPath: "data.id", MatchValue: "x", Expires: exp},
		{ID: "wb", Event: b, Expires: exp},
	}); err != nil {
		t.Fatal(err)
	}
	val := func(v any) func(string) (any, bool) { return func(string) (any, bool) { return v, true } }
	got, err := ws.CandidatesMany(ctx, []flowcontrol.Query{{Name: a, Lookup: val("x")}, {Name: a, Lookup: val("y")}, {Name: b, Lookup: val(nil)}, {Name: none, Lookup: val("x")}})
	if err != nil {
		t.Fatal(err)
	}
	counts := []int{len(got[0]), len(got[1]), len(got[2]), len(got[3])}
	if fmt.Sprint(counts) != "[1 0 1 0]" || got[0][0].ID != "wa" || got[2][0].ID != "wb" {
		t.Fatalf("candidates per query %v: %+v", counts, got)
	}
}

// Every key of the wait index expires, and after the longest wait it lists: a short wait
// registered later does not cut the life of an index that holds a long one.
func TestWaitKeysExpireAfterTheirLongestWait(t *testing.T) {
	t.Parallel()
	rdb := redisClient(t)
	ws := flowcontrol.NewWaits(rdb, nil)
	ctx := context.Background()
	name := uniqueName(t)
	long := flowcontrol.Wait{ID: "run-a/step", Kind: flowcontrol.KindWait, Event: name, MatchPath: "data.id", MatchValue: "u1",
		Expires: time.Now().Add(10 * 24 * time.Hour).UnixMilli()}
	short := long
	short.ID, short.Expires = "run-b/step", time.Now().Add(time.Second).UnixMilli()
	any := flowcontrol.Wait{ID: "run-c/step", Kind: flowcontrol.KindWait, Event: name, Expires: time.Now().Add(time.Minute).UnixMilli()}
	if err := ws.Register(ctx, []flowcontrol.Wait{long, short, any}); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, "tempest:{w:"+name+"}*").Result()
	if err != nil || len(keys) < 5 {
		t.Fatalf("keys %v %v", keys, err)
	}
	for _, k := range keys {
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil || ttl < 0 {
			t.Fatalf("%s has no expiry (%v, %v)", k, ttl, err)
		}
		if !strings.Contains(k, ":wait:run-b") && !strings.Contains(k, ":wait:run-c") && !strings.Contains(k, ":any") && ttl < 10*24*time.Hour {
			t.Errorf("%s expires in %s, before the 10-day wait it lists", k, ttl)
		}
	}
}
