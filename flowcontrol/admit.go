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
	// DedupWindow: the same event id is one event, with one run per function, for 24 h.
	DedupWindow = 24 * time.Hour
	// DecisionMemory: a retried ingest of the same run within it gets the same decision
	// (and is not counted twice). Events with their own id are remembered for DedupWindow.
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
	Function  string // fully qualified function id: the hash tag of every key
	RunID     string
	RateLimit *GCRA // lossy: over the limit, the run is dropped
	Throttle  *GCRA // non-lossy: over the limit, the run starts later
	// Remember is how long the decision is kept for retries of this run. Default
	// DecisionMemory.
	Remember time.Duration
}

// Outcomes of a decision.
const (
	Admitted    = 1
	RateLimited = 3
)

// Decision is what RateLimit or Throttle decided.
type Decision struct {
	Outcome int
	StartAt time.Time // Admitted: when the run may start (now, or later if throttled)
	// Replayed: an earlier call decided for this run (a retry, or the same event sent
	// again): its start may or may not have happened.
	Replayed bool
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

// RateLimit decides, for several runs in one pipelined round trip, which the lossy rate
// limit (or idempotency, a limit of 1 per key and 24 h) admits; a run without one is
// admitted. It is the first decision of the start path, so it is always remembered:
// Decision.Replayed tells a retried dispatch of the same run.
func (a *Admitter) RateLimit(ctx context.Context, reqs []Admission) ([]Decision, error) {
	return a.decide(ctx, reqs, stageRate)
}

// Throttle gives each run its start slot (now, or later), in order, in one pipelined round
// trip: the events of one request take their slots in arrival order. Runs without a
// throttle start now.
func (a *Admitter) Throttle(ctx context.Context, reqs []Admission) ([]Decision, error) {
	return a.decide(ctx, reqs, stageThrottle)
}

// The two stages of admit.lua; each remembers its own decision per run.
const (
	stageRate     = "decision"
	stageThrottle = "slot"
)

func (a *Admitter) decide(ctx context.Context, reqs []Admission, stage string) ([]Decision, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	now := a.now().UnixMilli()
	// A retried batch after a Redis restart replays the decisions that did run, which the
	// caller handles anyway.
	cmds, err := evalMany(ctx, a.rdb, admitScript, len(reqs), func(i int) ([]string, []any) { return admitArgs(reqs[i], now, stage) })
	if err != nil {
		return nil, fmt.Errorf("admit runs of %s: %w", reqs[0].Function, err)
	}
	out := make([]Decision, len(reqs))
	for i, c := range cmds {
		res, err := c.Slice()
		if err != nil || len(res) != 3 {
			return nil, fmt.Errorf("admit run %s of %s: %v", reqs[i].RunID, reqs[i].Function, err)
		}
		outcome, _ := res[0].(int64)
		replayed, _ := res[2].(int64)
		d := Decision{Outcome: int(outcome), Replayed: replayed == 1}
		if d.Outcome == Admitted {
			ms, err := strconv.ParseInt(fmt.Sprint(res[1]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("admit: bad start time %q", res[1])
			}
			d.StartAt = time.UnixMilli(ms)
		}
		out[i] = d
	}
	return out, nil
}

func admitArgs(req Admission, now int64, stage string) ([]string, []any) {
	tag := functionTag(req.Function)
	keys := []string{tag + ":" + stage + ":" + req.RunID, tag + ":rl:", tag + ":th:"}
	rate, throttle := req.RateLimit, req.Throttle
	if stage == stageRate {
		throttle = nil
	} else {
		rate = nil
	}
	on := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	rlEm, rlTol, thEm, thTol := 0.0, 0.0, 0.0, 0.0
	if g := rate; g != nil {
		keys[1] += hashed(g.Key)
		rlEm = g.emissionMS()
		rlTol = rlEm * float64(g.Burst)
	}
	if g := throttle; g != nil {
		keys[2] += hashed(g.Key)
		thEm = g.emissionMS()
		thTol = thEm * float64(g.Limit+g.Burst-1)
	}
	remember := req.Remember
	if remember <= 0 {
		remember = DecisionMemory
	}
	return keys, []any{now,
		on(rate != nil), rlEm, rlTol,
		on(throttle != nil), thEm, thTol,
		remember.Milliseconds(),
	}
}
