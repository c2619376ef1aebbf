package flowcontrol

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Singleton modes, as Inngest names them.
const (
	SingletonSkip   = "skip"
	SingletonCancel = "cancel"
)

// singletonLease bounds how long a lock outlives a run that never released it. Runs release
// their lock when they end, and a lock whose holder has ended is taken over (Steal), so the
// lease only matters if Redis keeps a lock of a run Temporal has forgotten.
const singletonLease = 366 * 24 * time.Hour

var (
	//go:embed singleton.lua
	singletonSrc    string
	singletonScript = redis.NewScript(singletonSrc)
	//go:embed cas.lua
	casSrc    string
	casScript = redis.NewScript(casSrc)
)

// SingletonOutcome is the outcome of AcquireSingleton (singleton.lua's first reply).
type SingletonOutcome int

// Outcomes of AcquireSingleton.
const (
	Held      SingletonOutcome = 0 // skip mode: another run holds it
	Acquired  SingletonOutcome = 1 // the run holds the lock
	TakenOver SingletonOutcome = 2 // cancel mode: the lock moved; cancel the previous holder
)

// AcquireSingleton takes the lock for runID; see the outcomes.
func AcquireSingleton(ctx context.Context, rdb redis.UniversalClient, key, runID, mode string) (outcome SingletonOutcome, holder string, err error) {
	res, err := singletonScript.Run(ctx, rdb, []string{key}, runID, mode, singletonLease.Milliseconds()).Slice()
	if err != nil {
		return 0, "", fmt.Errorf("singleton %s: %w", key, err)
	}
	n, ok := replyInt(res)
	if !ok || n < int64(Held) || n > int64(TakenOver) {
		return 0, "", fmt.Errorf("singleton %s: unexpected reply %v from singleton.lua", key, res)
	}
	if len(res) > 1 {
		holder, _ = res[1].(string)
	}
	return SingletonOutcome(n), holder, nil
}

// StealSingleton moves the lock from a holder that has ended to runID; false if the lock
// changed meanwhile.
func StealSingleton(ctx context.Context, rdb redis.UniversalClient, key, from, runID string) (bool, error) {
	n, err := casScript.Run(ctx, rdb, []string{key}, from, runID, singletonLease.Milliseconds()).Int()
	return n == 1, err
}

// ReleaseSingleton frees the lock if runID still holds it.
func ReleaseSingleton(ctx context.Context, rdb redis.UniversalClient, key, runID string) error {
	return casScript.Run(ctx, rdb, []string{key}, runID, "", 0).Err()
}
