package flowcontrol

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Windows of the start path.
const (
	// DedupWindow: the same event id starts at most one run per function in 24 h.
	DedupWindow = 24 * time.Hour
	// DecisionMemory: a retried ingest of the same run within it gets the same decision
	// (and is not counted twice).
	DecisionMemory = 30 * time.Minute
)

// GCRA is a rate: Limit per Period, with Burst extra (see RateLimitBurst for rate limits).
// Key is the evaluated key value ("" for the whole function).
type GCRA struct {
	Key    string
	Limit  int64
	Period time.Duration
	Burst  int64
}

func (g *GCRA) emissionMS() float64 {
	return float64(g.Period) / float64(time.Millisecond) / float64(g.Limit)
}

// RateLimitBurst is Inngest's implicit burst of a rate limit: floor(limit/10).
func RateLimitBurst(limit int64) int64 { return limit / 10 }

// Admission is the start-path decision for one (event, function).
type Admission struct {
	Function string // fully qualified function id: the hash tag of every key
	RunID    string
	// DedupID is the event's id: a second run of the function for the same id within 24 h
	// is a duplicate. "" disables the check.
	DedupID   string
	RateLimit *GCRA // lossy: over the limit, the run is dropped
	Throttle  *GCRA // non-lossy: over the limit, the run starts later
}

// Outcomes of Admit.
const (
	Admitted    = 1
	Duplicate   = 2
	RateLimited = 3
)

// Decision is what Admit decided.
type Decision struct {
	Outcome int
	StartAt time.Time // Admitted: when the run may start (now, or later if throttled)
	Holder  string    // Duplicate: the run that holds the event id
}

//go:embed admit.lua
var admitSrc string

var admitScript = redis.NewScript(admitSrc)

// Admitter makes start-path decisions against Redis with one clock.
type Admitter struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewAdmitter returns an Admitter; now nil means time.Now.
func NewAdmitter(rdb redis.UniversalClient, now func() time.Time) *Admitter {
	if now == nil {
		now = time.Now
	}
	return &Admitter{rdb: rdb, now: now}
}

func hashed(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:12])
}

// Admit decides in one round trip: dedup, then rate limit, then throttle slot.
func (a *Admitter) Admit(ctx context.Context, req Admission) (Decision, error) {
	tag := "tempest:{f:" + req.Function + "}"
	keys := []string{tag + ":decision:" + req.RunID, tag + ":dedup:" + hashed(req.DedupID), tag + ":rl:", tag + ":th:"}
	on := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	rlEm, rlTol, thEm, thTol := 0.0, 0.0, 0.0, 0.0
	if g := req.RateLimit; g != nil {
		keys[2] += hashed(g.Key)
		rlEm = g.emissionMS()
		rlTol = rlEm * float64(g.Burst)
	}
	if g := req.Throttle; g != nil {
		keys[3] += hashed(g.Key)
		thEm = g.emissionMS()
		thTol = thEm * float64(g.Limit+g.Burst-1)
	}
	now := a.now().UnixMilli()
	res, err := admitScript.Run(ctx, a.rdb, keys,
		now, req.RunID,
		on(req.DedupID != ""), DedupWindow.Milliseconds(),
		on(req.RateLimit != nil), rlEm, rlTol,
		on(req.Throttle != nil), thEm, thTol,
		DecisionMemory.Milliseconds(),
	).Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("admit run %s of %s: %w", req.RunID, req.Function, err)
	}
	outcome, _ := res[0].(int64)
	value := fmt.Sprint(res[1])
	d := Decision{Outcome: int(outcome)}
	switch d.Outcome {
	case Admitted:
		ms, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return Decision{}, fmt.Errorf("admit: bad start time %q", value)
		}
		d.StartAt = time.UnixMilli(ms)
	case Duplicate:
		d.Holder = value
	}
	return d, nil
}
