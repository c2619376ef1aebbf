package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/ids"
)

// startConcurrency bounds the StartWorkflow calls one ingest makes at once.
const startConcurrency = 16

// inbound is an event as a client sends it.
type inbound struct {
	ID   string          `json:"id"`
	Name string          `json:"name"`
	Data json.RawMessage `json:"data"`
	User json.RawMessage `json:"user"`
	TS   int64           `json:"ts"`
	V    string          `json:"v"`
}

// accepted is a validated event with its internal id.
type accepted struct {
	internal ulid.ULID
	received time.Time
	ev       inbound
	ownID    bool              // the client gave the event its id
	norm     json.RawMessage   // the event as functions see it
	mapForm  map[string]any    // decoded lazily for CEL
	span     trace.SpanContext // of the request that accepted it (tracing on)
}

func (e *accepted) asMap() map[string]any {
	if e.mapForm == nil {
		_ = json.Unmarshal(e.norm, &e.mapForm)
	}
	return e.mapForm
}

// Send accepts events from Go (structs or maps with name/data/...), as POST /e/{key} does,
// and returns their internal ids once their runs have started: the events are in the log
// and this process has dispatched them (so EventRuns lists the runs at once), or, when that
// dispatch failed, the log's retry has, within ctx. An event that was already in the log
// returns at once.
func (a *App) Send(ctx context.Context, events ...any) ([]string, error) {
	raws := make([]json.RawMessage, len(events))
	for i, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return nil, &api.InputError{Msg: fmt.Sprintf("event %d: %v", i, err)}
		}
		raws[i] = b
	}
	now := time.Now()
	out, p, err := a.ingest(ctx, raws, now, func(int) ulid.ULID { return ids.NewEventID(now) })
	if err != nil {
		return nil, err
	}
	return out, a.waitDispatched(ctx, p)
}

// Ingest validates events, writes them to the event log in one transaction and returns
// their internal ids once that is committed: from then on every matching function gets its
// run, exactly once, also if this process dies (another claims the dispatch from the log).
// This process dispatches them right away. A retry with the same seed, or of events with
// their own ids, is idempotent (same ids, same runs). A request with one invalid event
// accepts none: the error is an *api.InputError naming the event's index.
func (a *App) Ingest(ctx context.Context, seed string, raws []json.RawMessage) ([]string, error) {
	now := time.Now()
	s, seeded := ids.ParseSeed(seed)
	out, _, err := a.ingest(ctx, raws, now, func(i int) ulid.ULID {
		if seeded {
			return s.EventID(i)
		}
		return ids.NewEventID(now)
	})
	var inErr *api.InputError
	if errors.As(err, &inErr) {
		a.metrics.EventsReceived.WithLabelValues("other", "rejected").Add(float64(len(raws)))
	}
	return out, err
}

// sendEvents accepts the events a run sends (step.SendEvent, and with internal set,
// Tempest's own inngest/ system events) under ids the workflow derived, so a retried send
// is idempotent. It returns once they are in the log (activities.Activities.Send).
//
// System events are dispatched here, before they are logged, and logged dispatched in one
// write: the run's local activity that sends them is what makes them durable (Temporal
// retries it until it returns, and every stage of a dispatch is idempotent), so they need
// neither a lease nor a second write, and the run closes once its events' runs started.
func (a *App) sendEvents(ctx context.Context, raws []json.RawMessage, eventIDs []ulid.ULID, internal bool) ([]string, error) {
	if len(eventIDs) != len(raws) {
		return nil, fmt.Errorf("send events: %d events but %d ids", len(raws), len(eventIDs))
	}
	evs, err := a.prepare(raws, time.Now(), internal, func(i int) ulid.ULID { return eventIDs[i] })
	var inErr *api.InputError
	if errors.As(err, &inErr) { // an invalid event stays invalid: do not retry
		return nil, temporal.NewNonRetryableApplicationError(inErr.Msg, "InvalidEvent", nil)
	}
	if err != nil {
		return nil, err
	}
	if internal {
		err = a.dispatchThenLog(ctx, evs)
	} else {
		_, err = a.accept(ctx, evs)
	}
	if err != nil {
		return nil, err
	}
	return idsOf(evs), nil
}

// ingest validates events, gives each its internal id and accepts them into the log.
func (a *App) ingest(ctx context.Context, raws []json.RawMessage, now time.Time, idOf func(int) ulid.ULID) ([]string, *pending, error) {
	ctx, span := a.tracer.Start(ctx, "tempest.ingest", trace.WithAttributes(attribute.Int("tempest.events", len(raws))))
	defer span.End()
	evs, err := a.prepare(raws, now, false, idOf)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, nil, err
	}
	for _, ev := range evs { // the runs it starts are spans of this trace
		ev.span = span.SpanContext()
	}
	// Dedup happens in the log: an event with its own id (or a retried request's event)
	// takes the internal id it has there, so its runs are the same runs.
	p, err := a.accept(ctx, evs)
	if err != nil {
		return nil, nil, err
	}
	// By name when a trigger names it, else "other": clients cannot grow the label set.
	r := a.routes.Load()
	for _, ev := range evs {
		name := ev.ev.Name
		if len(r.byEvent[name]) == 0 {
			name = "other"
		}
		a.metrics.EventsReceived.WithLabelValues(name, "accepted").Inc()
	}
	return idsOf(evs), p, nil
}

// prepare validates events and gives each its internal id; an invalid event is an
// *api.InputError naming its index.
func (a *App) prepare(raws []json.RawMessage, now time.Time, internal bool, idOf func(int) ulid.ULID) ([]*accepted, error) {
	evs := make([]*accepted, len(raws))
	for i, raw := range raws {
		ev, err := a.validate(raw, now, internal)
		if err != nil {
			if len(raws) > 1 {
				err = fmt.Errorf("event %d: %w", i, err)
			}
			return nil, &api.InputError{Msg: err.Error()}
		}
		ev.internal = idOf(i)
		ev.received = now
		ev.ownID = ev.ev.ID != ""
		if err := ev.normalize(internal); err != nil {
			return nil, &api.InputError{Msg: fmt.Sprintf("event %d: %v", i, err)}
		}
		evs[i] = ev
	}
	return evs, nil
}

// remember is how long decisions about ev are kept for a send of the same event: the
// dedup window when the client gave it an id, else long enough for retries.
func (ev *accepted) remember() time.Duration {
	if ev.ownID {
		return flowcontrol.DedupWindow
	}
	return flowcontrol.DecisionMemory
}

// runIDFor is the id of f's run for ev.
func runIDFor(f *function, ev *accepted) string { return ids.RunID(f.slug, ev.internal).String() }

// fanOut runs a batch's Temporal or Redis calls startConcurrency at a time; Wait returns
// the first error once all are done (nothing is cancelled: every call's outcome counts).
func fanOut() *errgroup.Group {
	g := &errgroup.Group{}
	g.SetLimit(startConcurrency)
	return g
}

// match lists the functions of the environment whose triggers an event fires, each once.
func (a *App) match(ev *accepted) []*function {
	r := a.routes.Load()
	var out []*function
	consider := func(f *function) {
		if f.fires(ev) {
			out = append(out, f)
		}
	}
	for _, f := range r.byEvent[ev.ev.Name] {
		consider(f)
	}
	for _, f := range r.wildcards {
		if !slices.Contains(out, f) {
			consider(f)
		}
	}
	return out
}

// matchesPaused reports whether a paused function's trigger fires on ev.
func (a *App) matchesPaused(ev *accepted) bool {
	for _, f := range a.routes.Load().paused {
		if f.fires(ev) {
			return true
		}
	}
	return false
}

// fires reports whether one of f's event triggers fires on ev.
func (f *function) fires(ev *accepted) bool {
	for _, t := range f.triggers {
		if t.matches(ev.ev.Name, ev.asMap) {
			return true
		}
	}
	return false
}

// isPaused reports whether function slug is paused.
func (r *routes) isPaused(slug string) bool {
	return slices.ContainsFunc(r.paused, func(f *function) bool { return f.slug == slug })
}

// shorten cuts s to at most n bytes on a rune boundary, marking the cut: summaries stay well
// inside Temporal's 400-byte limit whatever the event name.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
