package flowcontrol

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
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

// SingletonKey is the lock of (function, key value); the hash tag is the function.
func SingletonKey(function, value string) string {
	h := sha256.Sum256([]byte(value))
	return "tempest:{s:" + function + "}:" + hex.EncodeToString(h[:12])
}

// Outcomes of AcquireSingleton.
const (
	Acquired  = 1 // the run holds the lock
	Held      = 0 // skip mode: another run holds it
	TakenOver = 2 // cancel mode: the lock moved; cancel the previous holder
)

// AcquireSingleton takes the lock for runID; see the outcomes.
func AcquireSingleton(ctx context.Context, rdb redis.UniversalClient, key, runID, mode string) (outcome int, holder string, err error) {
	res, err := singletonScript.Run(ctx, rdb, []string{key}, runID, mode, singletonLease.Milliseconds()).Slice()
	if err != nil {
		return 0, "", fmt.Errorf("singleton %s: %w", key, err)
	}
	n, _ := res[0].(int64)
	if len(res) > 1 {
		holder, _ = res[1].(string)
	}
	return int(n), holder, nil
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
