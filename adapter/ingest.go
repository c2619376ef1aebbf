package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/ids"
	"github.com/tempestrun/tempest/workflows"
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
	ownID    bool            // the client gave the event its id
	norm     json.RawMessage // the event as functions see it
	mapForm  map[string]any  // decoded lazily for CEL
}

func (e *accepted) asMap() map[string]any {
	if e.mapForm == nil {
		_ = json.Unmarshal(e.norm, &e.mapForm)
	}
	return e.mapForm
}

// storedEvent is the Redis record of an accepted event.
type storedEvent struct {
	Event api.Event `json:"event"`
	Runs  []string  `json:"runs"`
}

func eventKey(id string) string { return "tempest:event:" + id }

// Send accepts events from Go (structs or maps with name/data/...), as POST /e/{key} does.
func (a *App) Send(ctx context.Context, events ...any) ([]string, error) {
	raws := make([]json.RawMessage, len(events))
	for i, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return nil, &api.InputError{Msg: fmt.Sprintf("event %d: %v", i, err)}
		}
		raws[i] = b
	}
	return a.Ingest(ctx, "", raws)
}

// Ingest validates events, starts a run for each (function, event) whose trigger matches,
// stores the events, and returns their internal ids. It returns only when every start is
// durable in Temporal; on error nothing should be acknowledged, and a retry with the same
// seed is idempotent (same ids, same workflow ids). A request with one invalid event
// accepts none: the error is an *api.InputError naming the event's index.
func (a *App) Ingest(ctx context.Context, seed string, raws []json.RawMessage) ([]string, error) {
	now := time.Now()
	s, seeded := ids.ParseSeed(seed)
	return a.ingest(ctx, raws, now, false, func(i int) ulid.ULID {
		if seeded {
			return s.EventID(i)
		}
		return ids.NewEventID(now)
	})
}

// SendEvents accepts the events a run sends (step.SendEvent, and with internal set,
// Tempest's own inngest/ system events) under ids the workflow derived, so a retried send
// is idempotent. It implements activities.Sender.
func (a *App) SendEvents(ctx context.Context, raws []json.RawMessage, eventIDs []ulid.ULID, internal bool) ([]string, error) {
	if len(eventIDs) != len(raws) {
		return nil, fmt.Errorf("send events: %d events but %d ids", len(raws), len(eventIDs))
	}
	out, err := a.ingest(ctx, raws, time.Now(), internal, func(i int) ulid.ULID { return eventIDs[i] })
	var inErr *api.InputError
	if errors.As(err, &inErr) { // an invalid event stays invalid: do not retry
		return nil, temporal.NewNonRetryableApplicationError(inErr.Msg, "InvalidEvent", nil)
	}
	return out, err
}

func (a *App) ingest(ctx context.Context, raws []json.RawMessage, now time.Time, internal bool, idOf func(int) ulid.ULID) ([]string, error) {
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
		evs[i] = ev
	}
	// An event with its own id is the same event whenever it is sent: it takes the internal
	// id of the first send, so its runs are the same runs.
	if err := a.adoptEventIDs(ctx, evs); err != nil {
		return nil, err
	}
	for i, ev := range evs {
		if err := ev.normalize(internal); err != nil {
			return nil, &api.InputError{Msg: fmt.Sprintf("event %d: %v", i, err)}
		}
	}

	type start struct {
		i      int // index of the event
		fn     *function
		run    string
		dec    flowcontrol.Decision
		listed string // the run id to list under the event ("" none)
	}
	var starts, admit []*start
	for i, ev := range evs {
		for _, f := range a.match(ev) {
			starts = append(starts, &start{i: i, fn: f, run: runIDFor(f, ev)})
		}
	}
	// Buffered events, then the start-path decisions, in arrival order: the events of one
	// request take batch places and throttle slots as if sent one by one.
	var adms []flowcontrol.Admission
	for _, st := range starts {
		ev := evs[st.i]
		if !st.fn.buffered(ev) {
			admit = append(admit, st)
			adms = append(adms, st.fn.admission(st.run, ev))
			continue
		}
		listed, err := a.buffer(ctx, st.fn, ev)
		if err != nil {
			return nil, err
		}
		st.listed = listed
	}
	decs, err := a.admitter.AdmitMany(ctx, adms)
	if err != nil {
		return nil, err
	}
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, startConcurrency)
		errMu    sync.Mutex
		firstErr error
	)
	for j, st := range admit {
		st.dec = decs[j]
		if st.dec.Outcome != flowcontrol.Admitted {
			continue // dropped by the rate limit or idempotency: listed under no run
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			listed, err := a.startRun(ctx, st.fn, st.run, evs[st.i], st.dec)
			st.listed = listed
			if err != nil {
				errMu.Lock()
				firstErr = cmpErr(firstErr, err)
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	runs := make([][]string, len(evs))
	for _, st := range starts {
		if st.listed != "" && !slices.Contains(runs[st.i], st.listed) {
			runs[st.i] = append(runs[st.i], st.listed)
		}
	}

	if err := a.storeEvents(ctx, evs, runs); err != nil {
		return nil, err
	}
	if err := a.deliver(ctx, evs, now); err != nil {
		return nil, err
	}
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.internal.String()
	}
	return out, nil
}

// adoptEventIDs gives each event that carries its own id the internal id of the first
// event sent with that id within the dedup window (flowcontrol.ClaimEventIDs).
func (a *App) adoptEventIDs(ctx context.Context, evs []*accepted) error {
	var own []*accepted
	var clientIDs, candidates []string
	for _, ev := range evs {
		if ev.ownID {
			own = append(own, ev)
			clientIDs = append(clientIDs, ev.ev.ID)
			candidates = append(candidates, ev.internal.String())
		}
	}
	holders, err := flowcontrol.ClaimEventIDs(ctx, a.redis, clientIDs, candidates)
	if err != nil {
		return err
	}
	for i, ev := range own {
		id, err := ulid.Parse(holders[i])
		if err != nil {
			return fmt.Errorf("event id %q: stored internal id %q: %w", ev.ev.ID, holders[i], err)
		}
		ev.internal = id
	}
	return nil
}

// remember is how long decisions about ev are kept for a send of the same event: the
// dedup window when the client gave it an id, else long enough for retries.
func (ev *accepted) remember() time.Duration {
	if ev.ownID {
		return flowcontrol.DedupWindow
	}
	return flowcontrol.DecisionMemory
}

// storeEvents keeps the events (and the runs they started) for the REST API.
func (a *App) storeEvents(ctx context.Context, evs []*accepted, runs [][]string) error {
	pipe := a.redis.Pipeline()
	for i, ev := range evs {
		rec := storedEvent{Runs: runs[i], Event: api.Event{
			InternalID: ev.internal.String(), ReceivedAt: ev.received.UTC(), ID: ev.ev.ID, Name: ev.ev.Name,
			Data: ev.ev.Data, User: ev.ev.User, TS: ev.ev.TS, V: ev.ev.V,
		}}
		if rec.Runs == nil {
			rec.Runs = []string{}
		}
		b, _ := json.Marshal(rec)
		pipe.Set(ctx, eventKey(rec.Event.InternalID), b, a.opts.EventRetention)
	}
	if len(evs) == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("store events: %w", err)
	}
	return nil
}

// runIDFor is the id of f's run for ev.
func runIDFor(f *function, ev *accepted) string { return ids.RunID(f.slug, ev.internal).String() }

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// match lists the functions of the environment whose triggers an event fires, each once.
func (a *App) match(ev *accepted) []*function {
	r := a.routes.Load()
	var out []*function
	consider := func(f *function) {
		for _, t := range f.triggers {
			if t.matches(ev.ev.Name, ev.asMap) {
				out = append(out, f)
				return
			}
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

// startRun starts an admitted run. A replayed decision means an earlier send of the same
// event decided for this run: it is started only if that send did not get as far (it
// started the run, or recorded it as skipped). It returns the id to list under the event.
func (a *App) startRun(ctx context.Context, f *function, runID string, ev *accepted, dec flowcontrol.Decision) (string, error) {
	if dec.Replayed {
		_, _, err := a.describe(ctx, runID)
		if err == nil {
			return runID, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return "", err
		}
	}
	if err := a.launch(ctx, f, runID, []*accepted{ev}, dec.StartAt); err != nil {
		return "", err
	}
	return runID, nil
}

// startOne takes one event for f through the whole start path (buffer, or admission and
// start); it returns the id to list under the event.
func (a *App) startOne(ctx context.Context, f *function, runID string, ev *accepted) (string, error) {
	if f.buffered(ev) {
		return a.buffer(ctx, f, ev)
	}
	dec, err := a.admitter.Admit(ctx, f.admission(runID, ev))
	if err != nil || dec.Outcome != flowcontrol.Admitted {
		return "", err
	}
	return a.startRun(ctx, f, runID, ev, dec)
}

// launch starts the run of f for evs (the first is the trigger) at startAt (now, or later
// when throttled), under its singleton rule.
func (a *App) launch(ctx context.Context, f *function, runID string, evs []*accepted, startAt time.Time) error {
	ev := evs[0]
	lock, skip, err := a.admitSingleton(ctx, f, runID, ev)
	if err != nil || skip {
		return err
	}
	in := workflows.RunInput{
		Singleton:  lock,
		FunctionID: f.slug, RunID: runID, Retries: f.retries,
		EventID: ev.internal.String(), Cancel: f.cancel, ScheduledAt: time.Now().UnixMilli(),
		StartTimeout: f.startTimeout, FinishTimeout: f.finishTimeout,
		Concurrency: f.leases(ev), Priority: f.priorityFactor(ev), Throttle: f.gate(ev),
	}
	if in.Throttle != nil {
		in.Throttle.SlotMS = startAt.UnixMilli()
	}
	for _, e := range evs {
		in.Events = append(in.Events, e.norm)
	}
	if len(in.Cancel) > 0 {
		// Cancellable from now on, not only once the run reaches its first workflow task.
		if err := a.waits.Register(ctx, workflows.CancelWaits(in)); err != nil {
			return err
		}
	}
	if err := injectedStartFault(f.slug); err != nil {
		return err
	}
	delay := time.Until(startAt)
	if delay < 0 {
		delay = 0
	}
	_, err = a.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       runID,
		TaskQueue:                                f.taskQueue,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// A throttled run waits in Temporal, durable, until its slot.
		StartDelay: delay,
		// When this process runs the app's worker, the first workflow task comes back in the
		// start response and skips matching (about 2 ms instead of 50 ms to the first step
		// here); without a local worker the server dispatches as usual.
		EnableEagerStart: delay == 0,
		Priority:         temporal.Priority{PriorityKey: f.priorityKey(in.Priority)},
		StaticSummary:    fmt.Sprintf("%s ← %s (event %s)", f.slug, shorten(ev.ev.Name, 100), ev.internal),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			SAFunctionID.ValueSet(f.slug),
			SAEventID.ValueSet(ev.internal.String()),
			SAEventName.ValueSet(ev.ev.Name),
		),
	}, f.slug, in)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &already) {
		return fmt.Errorf("start run %s of %s: %w", runID, f.slug, err)
	}
	return nil
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
