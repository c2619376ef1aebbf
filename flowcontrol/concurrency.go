package flowcontrol

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Concurrency leases: a step holds one per concurrency key while it executes.
const (
	// LeaseTTL is how long a lease lives unless renewed: a crashed worker's lease is free
	// after at most this long.
	LeaseTTL = 30 * time.Second
	// waiterTTL forgets a waiting run that stopped asking (cancelled, or its worker died).
	waiterTTL = 30 * time.Second
)

var (
	//go:embed concurrency.lua
	concurrencySrc    string
	concurrencyScript = redis.NewScript(concurrencySrc)
)

// Lease is one step's claim on a concurrency key.
type Lease struct {
	Key   string // ConcurrencyKey
	Limit int
}

// Acquire takes (or renews) the lease leaseID for runID on every key, or none: when one
// key is full, the leases taken on the others are given back. score orders waiting runs
// (lower first).
func Acquire(ctx context.Context, rdb redis.UniversalClient, now time.Time, leases []Lease, leaseID, runID string, score float64) (bool, error) {
	for i, l := range leases {
		ok, err := concurrencyScript.Run(ctx, rdb, []string{l.Key + ":leases", l.Key + ":waiting", l.Key + ":seen"},
			now.UnixMilli(), l.Limit, leaseID, now.Add(LeaseTTL).UnixMilli(), runID, score, waiterTTL.Milliseconds()).Int()
		if err != nil {
			return false, fmt.Errorf("concurrency %s: %w", l.Key, err)
		}
		if ok == 0 {
			return false, Release(ctx, rdb, leases[:i], leaseID)
		}
	}
	return true, nil
}

// Release gives the leases back.
func Release(ctx context.Context, rdb redis.UniversalClient, leases []Lease, leaseID string) error {
	for _, l := range leases {
		if err := rdb.ZRem(ctx, l.Key+":leases", leaseID).Err(); err != nil {
			return fmt.Errorf("concurrency %s: %w", l.Key, err)
		}
	}
	return nil
}
