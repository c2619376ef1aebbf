package adapter

import (
	"fmt"
	"time"

	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/expr"
)

// RateLimit drops runs over Limit per Period (lossy): a smoothed rate (GCRA) with Inngest's
// implicit burst of floor(Limit/10), so from idle floor(Limit/10)+1 runs start at once, then
// one per Period/Limit. Period is at most 24 h. Key (CEL over `event`) gives each value its
// own limit; a key that evaluates to false exempts the event.
type RateLimit struct {
	Limit  int
	Period time.Duration
	Key    *string
}

// Throttle delays runs over Limit per Period (non-lossy, FIFO): from idle Limit+Burst runs
// start at once, then one per Period/Limit; a delayed run waits in Temporal (StartDelay),
// durable, and REST shows it as Scheduled with its start time. Period is 1 s to 7 days.
// Key as for RateLimit.
type Throttle struct {
	Limit  int
	Period time.Duration
	Burst  int
	Key    *string
}

// Priority shifts a run ahead of (or behind) waiting work: Run is CEL over `event` giving
// seconds, clamped to -600..600 (an error or a non-number is 0). It maps to Temporal's task
// priority (PriorityKey 1 highest .. 5 lowest; 3 is the default), so it matters when a
// function's runs wait for workers.
type Priority struct {
	Run *string
}

// Concurrency limits the steps of this function executing at once, per key value (Inngest's
// step concurrency): sleeping, waiting and invoking runs hold no slot. A step that finds
// its key full waits in a timer (holding no worker) and asks again; waiting runs get slots
// oldest first, moved ahead by their Priority. Key is CEL over `event` (nil: one limit for
// the function); Scope "fn" (default) keeps the limit to this function, "env" shares it with
// every function that evaluates the same key value (a Key is then required).
type Concurrency struct {
	Limit int
	Key   *string
	Scope string
}

// MaxConcurrencyLimits is how many Concurrency entries a function may have.
const MaxConcurrencyLimits = 2

type concurrencyLimit struct {
	limit int
	scope string // "fn:<slug>" or "env"
	key   *expr.Program
}

// Limits of the start-path options.
const (
	MaxRateLimitPeriod = 24 * time.Hour
	MinThrottlePeriod  = time.Second
	MaxThrottlePeriod  = 7 * 24 * time.Hour
	MaxPriority        = 600
)

type limiter struct {
	limit, burst int64
	period       time.Duration
	key          *expr.Program
	reason       string // why a dropped event started no run
}

func compileKey(src *string) (*expr.Program, error) {
	if src == nil || *src == "" {
		return nil, nil
	}
	return expr.Compile(*src)
}

// compileFlowControl validates and compiles the start-path options into f.
func (f *function) compileFlowControl(opts FunctionOpts) error {
	if opts.Idempotency != nil && opts.RateLimit != nil {
		return fmt.Errorf("idempotency is a rate limit of 1 per 24 h per key: set Idempotency or RateLimit, not both")
	}
	if r := opts.RateLimit; r != nil {
		switch {
		case r.Limit < 1:
			return fmt.Errorf("rate limit: limit is %d, must be at least 1", r.Limit)
		case r.Period <= 0 || r.Period > MaxRateLimitPeriod:
			return fmt.Errorf("rate limit: period %s must be more than 0 and at most 24h", r.Period)
		}
		key, err := compileKey(r.Key)
		if err != nil {
			return fmt.Errorf("rate limit key: %w", err)
		}
		f.rateLimit = &limiter{limit: int64(r.Limit), burst: flowcontrol.RateLimitBurst(int64(r.Limit)), period: r.Period, key: key, reason: ReasonRateLimited}
	}
	if opts.Idempotency != nil {
		key, err := compileKey(opts.Idempotency)
		if err != nil {
			return fmt.Errorf("idempotency key: %w", err)
		}
		if key == nil {
			return fmt.Errorf("idempotency: the key expression is empty")
		}
		f.rateLimit = &limiter{limit: 1, period: flowcontrol.DedupWindow, key: key, reason: ReasonIdempotency}
	}
	if t := opts.Throttle; t != nil {
		switch {
		case t.Limit < 1:
			return fmt.Errorf("throttle: limit is %d, must be at least 1", t.Limit)
		case t.Burst < 0:
			return fmt.Errorf("throttle: burst is %d, must not be negative", t.Burst)
		case t.Period < MinThrottlePeriod || t.Period > MaxThrottlePeriod:
			return fmt.Errorf("throttle: period %s must be between 1s and 168h (7 days)", t.Period)
		}
		key, err := compileKey(t.Key)
		if err != nil {
			return fmt.Errorf("throttle key: %w", err)
		}
		f.throttle = &limiter{limit: int64(t.Limit), burst: int64(t.Burst), period: t.Period, key: key}
	}
	if len(opts.Concurrency) > MaxConcurrencyLimits {
		return fmt.Errorf("%d concurrency limits, at most %d are allowed", len(opts.Concurrency), MaxConcurrencyLimits)
	}
	for i, c := range opts.Concurrency {
		cl := concurrencyLimit{limit: c.Limit, scope: "fn:" + f.slug}
		switch {
		case c.Limit < 1:
			return fmt.Errorf("concurrency %d: limit is %d, must be at least 1", i, c.Limit)
		case c.Scope == "env" && c.Key == nil:
			return fmt.Errorf("concurrency %d: scope \"env\" needs a Key", i)
		case c.Scope == "env":
			cl.scope = "env"
		case c.Scope != "" && c.Scope != "fn":
			return fmt.Errorf("concurrency %d: scope %q: use \"fn\" or \"env\"", i, c.Scope)
		}
		key, err := compileKey(c.Key)
		if err != nil {
			return fmt.Errorf("concurrency %d key: %w", i, err)
		}
		cl.key = key
		f.concurrency = append(f.concurrency, cl)
	}
	if p := opts.Priority; p != nil && p.Run != nil {
		prog, err := expr.Compile(*p.Run)
		if err != nil {
			return fmt.Errorf("priority: %w", err)
		}
		f.priority = prog
	}
	return nil
}

// keyValue evaluates a flow-control key for an event: "" for no key; ok false when the key
// is false (the event is exempt); a key that fails to evaluate, or is null, is the "<nil>"
// bucket, as Inngest's.
func keyValue(key *expr.Program, ev *accepted) (value string, ok bool) {
	if key == nil {
		return "", true
	}
	v, err := key.Eval(map[string]any{"event": ev.asMap()})
	if v == false {
		return "", false
	}
	if err != nil || v == nil {
		return "<nil>", true
	}
	return fmt.Sprint(v), true
}

// gcra is a limiter's rate for an event; nil when the event is exempt.
func (l *limiter) gcra(ev *accepted) *flowcontrol.GCRA {
	if l == nil {
		return nil
	}
	key, ok := keyValue(l.key, ev)
	if !ok {
		return nil
	}
	return &flowcontrol.GCRA{Key: key, Limit: l.limit, Period: l.period, Burst: l.burst}
}

// admission is f's start-path request for one run.
func (f *function) admission(runID string, ev *accepted) flowcontrol.Admission {
	return flowcontrol.Admission{
		Function: f.slug, RunID: runID, Remember: ev.remember(),
		RateLimit: f.rateLimit.gcra(ev), Throttle: f.throttle.gcra(ev),
	}
}

// priorityFactor is the run's priority in seconds, clamped to ±600; errors and non-numbers
// are 0.
func (f *function) priorityFactor(ev *accepted) int {
	if f.priority == nil {
		return 0
	}
	v, err := f.priority.Eval(map[string]any{"event": ev.asMap()})
	var secs float64
	if err == nil {
		switch n := v.(type) {
		case int64:
			secs = float64(n)
		case uint64:
			secs = float64(n)
		case float64:
			secs = n
		}
	}
	return int(min(max(secs, -MaxPriority), MaxPriority))
}

// priorityKey maps the priority factor to Temporal's PriorityKey: 1 for 300 s and more, 2
// above 0, 3 at 0 (the default), 4 below 0, 5 for -300 s and less; 0 (the server's default)
// when the function sets no priority.
func (f *function) priorityKey(factor int) int {
	switch {
	case f.priority == nil:
		return 0
	case factor >= 300:
		return 1
	case factor > 0:
		return 2
	case factor == 0:
		return 3
	case factor > -300:
		return 4
	default:
		return 5
	}
}

// leases evaluates the concurrency keys of a run from its triggering event. A key that
// evaluates to false exempts the run from that limit.
func (f *function) leases(ev *accepted) []flowcontrol.Lease {
	var out []flowcontrol.Lease
	for _, c := range f.concurrency {
		value, ok := keyValue(c.key, ev)
		if !ok {
			continue
		}
		out = append(out, flowcontrol.Lease{Key: flowcontrol.ConcurrencyKey(c.scope, value), Limit: c.limit})
	}
	return out
}

// gate is the throttle a run of f for ev carries to its first step; nil without one.
func (f *function) gate(ev *accepted) *flowcontrol.Gate {
	g := f.throttle.gcra(ev)
	if g == nil {
		return nil
	}
	return &flowcontrol.Gate{Function: f.slug, Key: g.Key, Limit: g.Limit, Burst: g.Burst, PeriodMS: g.Period.Milliseconds()}
}
