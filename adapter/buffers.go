package adapter

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/expr"
	"github.com/tempestrun/tempest/internal/metrics"
	"github.com/tempestrun/tempest/workflows"
)

// Debounce delays a run until no new event with the same key has arrived for Period
// (1 s to 7 days); the run gets the last event. An event whose ts is older than the
// buffered one is ignored. Timeout caps the wait from the first event. Events that arrive
// while the debounced run is starting open a new debounce. RateLimit and Idempotency are
// checked for each event before it is debounced; Throttle applies when the run starts.
type Debounce struct {
	Period  time.Duration
	Key     *string
	Timeout *time.Duration
}

// BatchEvents collects events per key and starts one run with all of them (Input.Events;
// Input.Event is the first) once MaxSize events, MaxBatchBytes of events or Timeout (from
// the first event) is reached. An event for which If (CEL over `event`) is false runs alone
// at once.
type BatchEvents struct {
	MaxSize int
	Timeout time.Duration
	Key     *string
	If      *string
}

// Limits of buffering.
const (
	MinDebouncePeriod = time.Second
	MaxDebouncePeriod = 7 * 24 * time.Hour
	MinBatchTimeout   = time.Second
	// MaxBatchBytes caps a batch's events, as Inngest's. A batch over 256 KiB reaches the
	// run by reference: its payload is stored in Redis (flowcontrol.PayloadCodec).
	MaxBatchBytes = 10 << 20
	// flushEvery is how often the flusher looks for due buffers.
	flushEvery = 100 * time.Millisecond
)

type bufferConfig struct {
	kind            string
	period, timeout time.Duration
	maxSize         int
	key, cond       *expr.Program
}

func (f *function) compileBuffers(opts FunctionOpts) error {
	if d := opts.Debounce; d != nil {
		if d.Period < MinDebouncePeriod || d.Period > MaxDebouncePeriod {
			return fmt.Errorf("debounce: period %s must be between 1s and 168h (7 days)", d.Period)
		}
		key, err := compileKey(d.Key)
		if err != nil {
			return fmt.Errorf("debounce key: %w", err)
		}
		f.buffer = &bufferConfig{kind: flowcontrol.KindDebounce, period: d.Period, key: key}
		if d.Timeout != nil {
			if *d.Timeout < d.Period {
				return fmt.Errorf("debounce: timeout %s is shorter than the period %s", *d.Timeout, d.Period)
			}
			f.buffer.timeout = *d.Timeout
		}
	}
	if b := opts.BatchEvents; b != nil {
		switch {
		case opts.Debounce != nil:
			return fmt.Errorf("batchEvents cannot be combined with debounce")
		case len(opts.Cancel) > 0:
			return fmt.Errorf("batchEvents cannot be combined with cancelOn")
		case opts.Singleton != nil:
			return fmt.Errorf("batchEvents cannot be combined with singleton")
		case opts.Priority != nil:
			return fmt.Errorf("batchEvents cannot be combined with priority")
		case opts.RateLimit != nil || opts.Idempotency != nil:
			return fmt.Errorf("batchEvents cannot be combined with rateLimit or idempotency (batched runs skip them)")
		case b.MaxSize < 2:
			return fmt.Errorf("batchEvents: maxSize is %d, must be at least 2", b.MaxSize)
		case b.Timeout < MinBatchTimeout:
			return fmt.Errorf("batchEvents: timeout %s must be at least 1s", b.Timeout)
		}
		key, err := compileKey(b.Key)
		if err != nil {
			return fmt.Errorf("batchEvents key: %w", err)
		}
		var cond *expr.Program
		if b.If != nil {
			if cond, err = expr.CompileBool(*b.If); err != nil {
				return fmt.Errorf("batchEvents if: %w", err)
			}
		}
		f.buffer = &bufferConfig{kind: flowcontrol.KindBatch, timeout: b.Timeout, maxSize: b.MaxSize, key: key, cond: cond}
	}
	return nil
}

// buffered says whether ev goes to a buffer rather than starting a run now.
func (f *function) buffered(ev *accepted) bool {
	if f.buffer == nil {
		return false
	}
	return f.buffer.cond == nil || f.buffer.cond.Match(map[string]any{"event": ev.asMap()})
}

// bufferedEvent is how an event sits in a buffer.
type bufferedEvent struct {
	Internal string          `json:"i"`
	Received int64           `json:"r"`
	Event    json.RawMessage `json:"e"`
}

// buffer adds ev to its function's buffer (past the rate limit) and returns the buffer's
// run id.
func (a *App) buffer(ctx context.Context, f *function, ev *accepted) (string, error) {
	b := f.buffer
	key, ok := keyValue(b.key, ev)
	if !ok {
		key = "false" // a debounce or batch key has no exemption: false is a value like any other
	}
	item, _ := json.Marshal(bufferedEvent{Internal: ev.internal.String(), Received: ev.received.UnixMilli(), Event: ev.norm})
	status, id, err := a.buffers.Add(ctx, flowcontrol.Append{
		Function: f.slug, Kind: b.kind, Key: key,
		NewID: workflows.DeriveID(ev.received, f.slug, b.kind, key, ev.internal.String()).String(),
		Event: item, EventID: ev.internal.String(), EventTS: ev.ev.TS, Remember: ev.remember(),
		Period: b.period, Timeout: b.timeout, MaxSize: b.maxSize, MaxBytes: MaxBatchBytes,
	})
	if err != nil || status == flowcontrol.Ignored {
		return "", err
	}
	if status == flowcontrol.Full {
		// Flush now rather than at the next tick; a failure is retried by the flusher.
		if err := a.flush(ctx, f); err != nil {
			a.log.Warn("flush of a full batch failed; the flusher will retry", "function", f.slug, "err", err)
		}
	}
	return id, nil
}

// flusher starts the runs of due buffers until ctx is done. Every process runs one; the
// claims' leases keep two from starting a buffer's run twice.
func (a *App) flusher(ctx context.Context) {
	every(ctx, flushEvery, func() {
		for _, f := range a.routes.Load().buffered {
			if err := a.flush(ctx, f); err != nil && ctx.Err() == nil {
				a.log.Warn("flush failed; retried when its lease expires", "function", f.slug, "err", err)
			}
		}
	})
}

// flush claims f's due buffers and starts their runs.
func (a *App) flush(ctx context.Context, f *function) error {
	claims, err := a.buffers.Claim(ctx, f.slug, 100)
	if err != nil {
		return err
	}
	g := fanOut()
	for _, c := range claims {
		g.Go(func() error {
			if err := a.startFlush(ctx, f, c); err != nil {
				return err // the claim's lease expires and another flush retries it
			}
			return a.buffers.Done(ctx, c)
		})
	}
	return g.Wait()
}

func (a *App) startFlush(ctx context.Context, f *function, c flowcontrol.Flush) error {
	evs := make([]*accepted, 0, len(c.Events))
	for _, raw := range c.Events {
		var be bufferedEvent
		if err := json.Unmarshal(raw, &be); err != nil {
			return fmt.Errorf("buffer %s: %w", c.ID, err)
		}
		ev := &accepted{norm: be.Event, received: time.UnixMilli(be.Received)}
		if err := json.Unmarshal(be.Event, &ev.ev); err != nil {
			return fmt.Errorf("buffer %s: %w", c.ID, err)
		}
		var err error
		if ev.internal, err = ulid.Parse(be.Internal); err != nil {
			return fmt.Errorf("buffer %s: %w", c.ID, err)
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		return nil
	}
	if err := a.startAdmitted(ctx, []*candidate{{fn: f, run: c.ID, evs: evs}}); err != nil {
		return err
	}
	a.metrics.FlowControl.WithLabelValues(f.slug, metrics.Flushed).Inc()
	return nil
}
