package flowcontrol

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Buffers hold events that start runs later: debounce (the last event of a quiet period) and
// batches (up to MaxSize events, or Timeout). Each function keeps a due index; every Tempest
// process runs a flusher that claims due buffers with a lease and starts their runs under
// the buffer's id, so a crash between claim and start loses nothing (the lease expires and
// another flusher starts the run; a started run's id is taken, so it starts once).
type Buffers struct {
	rdb redis.UniversalClient
	now func() time.Time
	// Lease is how long a flusher owns a claimed buffer before another may take it over.
	// Default flushLease.
	Lease time.Duration
}

// NewBuffers returns the buffers on rdb; now nil means time.Now.
func NewBuffers(rdb redis.UniversalClient, now func() time.Time) *Buffers {
	if now == nil {
		now = time.Now
	}
	return &Buffers{rdb: rdb, now: now, Lease: flushLease}
}

// Kinds of buffers.
const (
	KindDebounce = "debounce"
	KindBatch    = "batch"
)

// flushLease is the default lease of a claimed buffer.
const flushLease = 30 * time.Second

var (
	//go:embed buffer_append.lua
	appendSrc    string
	appendScript = redis.NewScript(appendSrc)
	//go:embed buffer_claim.lua
	claimBufSrc    string
	claimBufScript = redis.NewScript(claimBufSrc)
)

// Append is one event for a buffer.
type Append struct {
	Function string
	Kind     string
	Key      string // evaluated key value
	NewID    string // the buffer's id if this event opens it (the run id)
	Event    json.RawMessage
	EventID  string // internal id: a retried ingest is not added twice
	EventTS  int64
	// Remember is how long the event's record outlives its buffer, so a retry or a
	// duplicate that comes after the flush is not buffered again. Default DecisionMemory.
	Remember time.Duration
	// Debounce: Period, and Timeout (0: none) from the first event. Batch: Timeout, and
	// MaxSize events or MaxBytes of events.
	Period, Timeout time.Duration
	MaxSize         int
	MaxBytes        int
}

// Append results.
const (
	Ignored = 0 // an older debounce event, or already in the buffer
	Added   = 1
	Full    = 2 // the batch is full: due now
)

// Add puts an event in its function's buffer; it returns the status and the buffer's id.
func (b *Buffers) Add(ctx context.Context, a Append) (int, string, error) {
	prefix := bufferPrefix(a.Function)
	member := a.Kind + ":" + hashed(a.Key)
	buf := prefix + "buf:" + member
	var p1, p2 int64
	switch a.Kind {
	case KindDebounce:
		p1, p2 = a.Period.Milliseconds(), a.Timeout.Milliseconds()
	case KindBatch:
		p1, p2 = a.Timeout.Milliseconds(), int64(a.MaxSize)
	default:
		return 0, "", fmt.Errorf("buffer kind %q", a.Kind)
	}
	remember := a.Remember
	if remember <= 0 {
		remember = DecisionMemory
	}
	res, err := appendScript.Run(ctx, b.rdb, []string{buf, buf + ":events", prefix + "due", prefix + "flushing", prefix + "seen:" + a.EventID},
		member, b.now().UnixMilli(), string(a.Event), a.EventID, a.EventTS, a.Kind, a.NewID, p1, p2, a.MaxBytes,
		remember.Milliseconds(), prefix).Slice()
	if err != nil {
		return 0, "", fmt.Errorf("buffer %s of %s: %w", a.Kind, a.Function, err)
	}
	n, _ := res[0].(int64)
	id, _ := res[1].(string)
	return int(n), id, nil
}

// Flush is a buffer a flusher owns until it calls Done (or its lease expires).
type Flush struct {
	Function string
	ID       string // the run id
	Kind     string
	Events   []json.RawMessage
	Bytes    int
}

// Claim takes up to max due buffers of a function.
func (b *Buffers) Claim(ctx context.Context, function string, max int) ([]Flush, error) {
	prefix := bufferPrefix(function)
	ids, err := claimBufScript.Run(ctx, b.rdb, []string{prefix + "due", prefix + "flushing"},
		b.now().UnixMilli(), b.Lease.Milliseconds(), max, prefix).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("claim buffers of %s: %w", function, err)
	}
	out := make([]Flush, 0, len(ids))
	for _, id := range ids {
		key := prefix + "flush:" + id
		pipe := b.rdb.Pipeline()
		kind := pipe.HGet(ctx, key, "kind")
		events := pipe.LRange(ctx, key+":events", 0, -1)
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read buffer %s: %w", id, err)
		}
		c := Flush{Function: function, ID: id, Kind: kind.Val()}
		for _, e := range events.Val() {
			c.Events = append(c.Events, json.RawMessage(e))
			c.Bytes += len(e)
		}
		out = append(out, c)
	}
	return out, nil
}

// Done forgets a flushed buffer (its run has started).
func (b *Buffers) Done(ctx context.Context, c Flush) error {
	prefix := bufferPrefix(c.Function)
	pipe := b.rdb.TxPipeline()
	pipe.Del(ctx, prefix+"flush:"+c.ID, prefix+"flush:"+c.ID+":events")
	pipe.ZRem(ctx, prefix+"flushing", c.ID)
	_, err := pipe.Exec(ctx)
	return err
}
