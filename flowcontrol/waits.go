package flowcontrol

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Kinds of waits.
const (
	KindWait   = "wait"   // step.WaitForEvent: the matching event resumes the run
	KindCancel = "cancel" // cancelOn: the matching event cancels the run
)

// Wait is one registered wait: a run that reacts to the next matching event.
type Wait struct {
	ID         string `json:"id"` // unique per run: "<run id>/<step or rule id>"
	Kind       string `json:"kind"`
	Event      string `json:"event"` // event name
	WorkflowID string `json:"workflow_id"`
	Signal     string `json:"signal,omitempty"` // KindWait: the signal that delivers the event
	// MatchPath and MatchValue index the wait by value: the event matches when its value at
	// MatchPath ("data.userId") equals MatchValue. An empty MatchPath means no match rule.
	MatchPath  string `json:"match_path,omitempty"`
	MatchValue any    `json:"match_value,omitempty"`
	// If is CEL over `event` (Trigger) and `async` (the candidate).
	If        string          `json:"if,omitempty"`
	Trigger   json.RawMessage `json:"trigger,omitempty"`
	TriggerID string          `json:"trigger_id,omitempty"` // internal id of the run's own event
	Created   int64           `json:"created"`              // unix ms, set by Register
	Expires   int64           `json:"expires"`              // unix ms
}

// Waits is the Redis index of waits.
type Waits struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewWaits returns the index on rdb; now is the clock (nil: time.Now).
func NewWaits(rdb redis.UniversalClient, now func() time.Time) *Waits {
	if now == nil {
		now = time.Now
	}
	return &Waits{rdb: rdb, now: now}
}

// indexKey is the sorted set a wait is listed in.
func (w *Wait) indexKey() (string, bool) {
	if w.MatchPath == "" {
		return anyKey(w.Event), true
	}
	v, ok := ValueKey(w.MatchValue)
	if !ok {
		return "", false // null never equals anything: the wait can only time out
	}
	return matchKey(w.Event, w.MatchPath, v), true
}

// ValueKey is the index form of a match value: type-tagged, so 1 and "1" differ. Objects,
// arrays and null are not indexable (ok false).
func ValueKey(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return "s:" + x, true
	case float64:
		return "n:" + strconv.FormatFloat(x, 'g', -1, 64), true
	case int:
		return "n:" + strconv.Itoa(x), true
	case int64:
		return "n:" + strconv.FormatInt(x, 10), true
	case json.Number:
		f, err := x.Float64()
		return "n:" + strconv.FormatFloat(f, 'g', -1, 64), err == nil
	case bool:
		return "b:" + strconv.FormatBool(x), true
	}
	return "", false
}

//go:embed register.lua
var registerSrc string

var registerScript = redis.NewScript(registerSrc)

// Register stores waits (idempotent: registering again changes nothing). Every key it
// writes expires a day after the latest wait it holds.
func (ws *Waits) Register(ctx context.Context, waits []Wait) error {
	if len(waits) == 0 {
		return nil
	}
	now := ws.now().UnixMilli()
	specs := make([][]byte, len(waits))
	for i := range waits {
		w := &waits[i]
		if w.Created == 0 {
			w.Created = now
		}
		spec, err := json.Marshal(w)
		if err != nil {
			return fmt.Errorf("wait %s: %w", w.ID, err)
		}
		specs[i] = spec
	}
	// One round trip for all of them; each registration is idempotent.
	cmds, err := evalMany(ctx, ws.rdb, registerScript, len(waits), func(i int) ([]string, []any) {
		w := &waits[i]
		idx, indexed := w.indexKey()
		if !indexed {
			idx = anyKey(w.Event) // listed nowhere; only declared, in the same slot
		}
		on := "0"
		if indexed {
			on = "1"
		}
		return []string{waitKey(w.Event, w.ID), idx, pathsKey(w.Event)},
			[]any{specs[i], w.Expires, w.ID, on, w.MatchPath, now, (24 * time.Hour).Milliseconds()}
	})
	if err == nil {
		for _, c := range cmds {
			if err = c.Err(); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("register waits: %w", err)
	}
	return nil
}

//go:embed claim.lua
var claimSrc string

var claimScript = redis.NewScript(claimSrc)

// ClaimOutcome is the outcome of a claim (claim.lua's first reply).
type ClaimOutcome int

// Outcomes of a claim.
const (
	Claimed        ClaimOutcome = 1  // this call claimed the wait
	AlreadyClaimed ClaimOutcome = 0  // someone claimed it before: prev holds what they stored
	Gone           ClaimOutcome = -1 // the wait does not exist (expired, or never registered)
)

// Claim takes a wait atomically, storing value (the event that resumes it, or a marker such
// as "~timeout"). Of an event and a timeout racing for one wait, exactly one wins; the loser
// learns the winner's value.
func (ws *Waits) Claim(ctx context.Context, w Wait, value string) (outcome ClaimOutcome, prev string, err error) {
	idx, _ := w.indexKey()
	if idx == "" {
		idx = anyKey(w.Event) // not listed anywhere: ZREM on it is a no-op, same slot
	}
	res, err := claimScript.Run(ctx, ws.rdb, []string{waitKey(w.Event, w.ID), idx}, value, w.ID).Slice()
	if err != nil {
		return 0, "", fmt.Errorf("claim wait %s: %w", w.ID, err)
	}
	n, ok := replyInt(res)
	if !ok || n < int64(Gone) || n > int64(Claimed) {
		return 0, "", fmt.Errorf("claim wait %s: unexpected reply %v from claim.lua", w.ID, res)
	}
	if len(res) > 1 {
		prev, _ = res[1].(string)
	}
	return ClaimOutcome(n), prev, nil
}

// Query asks for the waits an event may satisfy: its name, and its value at a path.
type Query struct {
	Name   string
	Lookup func(path string) (any, bool)
}

// Candidates lists the live waits for an event of this name whose match rule the event's
// fields satisfy (If is left to the caller).
func (ws *Waits) Candidates(ctx context.Context, name string, lookup func(path string) (any, bool)) ([]Wait, error) {
	out, err := ws.CandidatesMany(ctx, []Query{{Name: name, Lookup: lookup}})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// CandidatesMany answers several queries (the events of one request) together: one
// pipelined round trip when no wait exists for their names, three at most otherwise,
// whatever the number of events and of runs waiting on other values.
func (ws *Waits) CandidatesMany(ctx context.Context, qs []Query) ([][]Wait, error) {
	now := strconv.FormatInt(ws.now().UnixMilli(), 10)
	live := &redis.ZRangeBy{Min: "(" + now, Max: "+inf"}
	type byName struct {
		paths, anyIDs *redis.StringSliceCmd
	}
	names := map[string]*byName{}
	pipe := ws.rdb.Pipeline()
	for _, q := range qs {
		if names[q.Name] == nil {
			names[q.Name] = &byName{paths: pipe.SMembers(ctx, pathsKey(q.Name)), anyIDs: pipe.ZRangeByScore(ctx, anyKey(q.Name), live)}
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("wait lookup: %w", err)
	}
	ids := make([][]string, len(qs))
	pipe = ws.rdb.Pipeline()
	matches := make([][]*redis.StringSliceCmd, len(qs))
	pending := false
	for i, q := range qs {
		n := names[q.Name]
		ids[i] = n.anyIDs.Val()
		for _, p := range n.paths.Val() {
			v, ok := q.Lookup(p)
			if !ok {
				continue
			}
			if vk, ok := ValueKey(v); ok {
				matches[i] = append(matches[i], pipe.ZRangeByScore(ctx, matchKey(q.Name, p, vk), live))
				pending = true
			}
		}
	}
	if pending {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("wait lookup: %w", err)
		}
	}
	pipe = ws.rdb.Pipeline()
	specs := make([][]*redis.SliceCmd, len(qs))
	pending = false
	for i, q := range qs {
		for _, c := range matches[i] {
			ids[i] = append(ids[i], c.Val()...)
		}
		for _, id := range ids[i] {
			specs[i] = append(specs[i], pipe.HMGet(ctx, waitKey(q.Name, id), "spec", "claimed"))
			pending = true
		}
	}
	out := make([][]Wait, len(qs))
	if !pending {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("wait lookup: %w", err)
	}
	for i := range qs {
		for _, c := range specs[i] {
			vals := c.Val()
			spec, _ := vals[0].(string)
			if spec == "" || vals[1] != nil { // expired or already claimed
				continue
			}
			var w Wait
			if err := json.Unmarshal([]byte(spec), &w); err != nil {
				return nil, fmt.Errorf("wait spec: %w", err)
			}
			out[i] = append(out[i], w)
		}
	}
	return out, nil
}

// Lookup reads a dotted path ("data.user.id") in a decoded JSON object.
func Lookup(m map[string]any, path string) (any, bool) {
	var cur any = m
	for len(path) > 0 {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		key := path
		if i := strings.IndexByte(path, '.'); i >= 0 {
			key, path = path[:i], path[i+1:]
		} else {
			path = ""
		}
		if cur, ok = obj[key]; !ok {
			return nil, false
		}
	}
	return cur, true
}
