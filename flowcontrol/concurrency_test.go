package flowcontrol_test

import (
	"context"
	"testing"
	"time"

	"github.com/tempestrun/tempest/flowcontrol"
)

func TestConcurrencyLeases(t *testing.T) {
	t.Parallel()
	rdb := redisClient(t)
	ctx := context.Background()
	now := time.Now()
	key := []flowcontrol.Lease{{Key: flowcontrol.ConcurrencyKey("fn:"+fn(t), "k"), Limit: 2}}
	take := func(at time.Time, lease, run string, score float64) bool {
		ok, err := flowcontrol.Acquire(ctx, rdb, at, key, lease, run, score)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !take(now, "a/1", "a", 1) || !take(now, "b/1", "b", 2) {
		t.Fatal("two leases under a limit of 2 were refused")
	}
	if take(now, "c/1", "c", 3) || take(now, "d/1", "d", 0) {
		t.Fatal("a third lease was granted")
	}
	if !take(now, "a/1", "a", 1) {
		t.Fatal("renewing a held lease failed")
	}
	// One slot frees: the oldest waiter (d, score 0) gets it, not c who asked first.
	if err := flowcontrol.Release(ctx, rdb, key, "b/1"); err != nil {
		t.Fatal(err)
	}
	if take(now, "c/1", "c", 3) {
		t.Fatal("a younger waiter jumped the queue")
	}
	if !take(now, "d/1", "d", 0) {
		t.Fatal("the oldest waiter did not get the free slot")
	}
	// A crashed holder's lease expires.
	later := now.Add(flowcontrol.LeaseTTL + time.Second)
	if !take(later, "c/1", "c", 3) {
		t.Fatal("expired leases still block")
	}
}

// With two limits, a step holds both or neither.
func TestConcurrencyTwoKeysAllOrNone(t *testing.T) {
	t.Parallel()
	rdb := redisClient(t)
	ctx := context.Background()
	now := time.Now()
	a := flowcontrol.Lease{Key: flowcontrol.ConcurrencyKey("fn:"+fn(t), "a"), Limit: 5}
	b := flowcontrol.Lease{Key: flowcontrol.ConcurrencyKey("env", fn(t)+"b"), Limit: 1}
	if ok, _ := flowcontrol.Acquire(ctx, rdb, now, []flowcontrol.Lease{b}, "other", "other", 0); !ok {
		t.Fatal("setup")
	}
	ok, err := flowcontrol.Acquire(ctx, rdb, now, []flowcontrol.Lease{a, b}, "x/1", "x", 1)
	if err != nil || ok {
		t.Fatalf("acquired with the second key full: %v %v", ok, err)
	}
	if n := rdb.ZCard(ctx, a.Key+":leases").Val(); n != 0 {
		t.Fatalf("the first key kept %d leases after the second refused", n)
	}
}

// A limit's keys expire when nothing renews them: a crashed worker leaves nothing forever.
func TestConcurrencyKeysExpire(t *testing.T) {
	t.Parallel()
	rdb := redisClient(t)
	ctx := context.Background()
	key := flowcontrol.ConcurrencyKey("fn:"+fn(t), "k")
	leases := []flowcontrol.Lease{{Key: key, Limit: 1}}
	for _, run := range []string{"a", "b"} { // a holds the slot, b waits
		if _, err := flowcontrol.Acquire(ctx, rdb, time.Now(), leases, run+"/1", run, 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{key + ":leases", key + ":waiting", key + ":seen"} {
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > 2*time.Minute {
			t.Fatalf("%s: ttl %v %v, want a bounded expiry", k, ttl, err)
		}
	}
}
