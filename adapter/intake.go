package adapter

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tempestrun/tempest/internal/eventlog"
)

// The intake: an accepted event is written to the event log (internal/eventlog) and
// acknowledged once committed; the process that accepted it dispatches it at once (the
// start path, admission.go), and every process claims what no one dispatched (a process
// that died, a dispatch that failed) from the log.
const (
	// dispatchLease is how long an event's lease runs in the log: a process renews the
	// leases of the events it holds (queued for its dispatcher or being dispatched) every
	// third of it, so another process takes an event over only once its holder is dead or
	// has given it up, however long the backlog ahead of it.
	dispatchLease = 10 * time.Second
	// dispatchTimeout bounds one dispatch attempt (a wedged Temporal or Redis); its events
	// are retried from the log after it.
	dispatchTimeout = 30 * time.Second
	// dispatchRetry is how soon a failed dispatch is claimed again.
	dispatchRetry = time.Second
	// claimEvery is how often each process looks for events left undispatched.
	claimEvery = time.Second
	// dispatchBatch caps the events dispatched together (one rate-limit round trip, one
	// throttle round trip, then the starts), so that a burst's first runs start while its
	// last are still being admitted.
	dispatchBatch = 128
	// expireEvery is how often retention deletes expired events, expireBatch rows at a time.
	expireEvery = 10 * time.Minute
	expireBatch = 1000
)

// pending is a request's new events waiting for their dispatch; done is closed when the
// dispatch has run (err says whether it failed: the log retries it).
type pending struct {
	evs  []*accepted
	done chan struct{}
	err  error
}

// intake owns the dispatch loops of one App.
type intake struct {
	queue chan *pending
	stop  context.CancelFunc
	wg    sync.WaitGroup
	// lease and claimEvery are dispatchLease and claimEvery (shorter in tests).
	lease, claimEvery time.Duration

	mu   sync.Mutex
	held map[string]int // events this process holds (by internal id): renewed by keepLeases
	// dispatched counts the events this process dispatched (tests: none twice).
	dispatched atomic.Int64
}

// hold marks evs as this process's until release: keepLeases renews their leases.
func (in *intake) hold(evs []*accepted) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, ev := range evs {
		in.held[ev.internal.String()]++
	}
}

func (in *intake) release(evs []*accepted) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, ev := range evs {
		id := ev.internal.String()
		if in.held[id]--; in.held[id] <= 0 {
			delete(in.held, id)
		}
	}
}

func (in *intake) heldIDs() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	ids := make([]string, 0, len(in.held))
	for id := range in.held {
		ids = append(ids, id)
	}
	return ids
}

// accept writes evs to the log in one transaction and hands the new ones to this process's
// dispatcher. An event already in the log (the same client id within 24 h, or a retried
// request with the same seed) takes the internal id it has there and is not dispatched
// again: its first acceptance was. It returns the request's pending dispatch (nil when
// nothing is new).
func (a *App) accept(ctx context.Context, evs []*accepted) (*pending, error) {
	recs := make([]eventlog.Record, len(evs))
	for i, ev := range evs {
		recs[i] = ev.record()
	}
	out, err := a.events.Append(ctx, a.opts.Environment, recs, time.Now().Add(a.intake.lease))
	if err != nil {
		return nil, fmt.Errorf("write events to the log: %w", err)
	}
	var fresh []*accepted
	for i, ev := range evs {
		if !out[i].New {
			id, err := ulid.Parse(out[i].InternalID)
			if err != nil {
				return nil, fmt.Errorf("event log: stored internal id %q: %w", out[i].InternalID, err)
			}
			ev.internal = id
			continue
		}
		fresh = append(fresh, ev)
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	p := &pending{evs: fresh, done: make(chan struct{})}
	a.intake.hold(fresh)
	select {
	case a.intake.queue <- p:
	default:
		// The dispatcher is far behind: the events are safe in the log; give up their lease
		// so that the claim loop of any process takes them.
		a.intake.release(fresh)
		_ = a.events.Retry(ctx, idsOf(fresh), time.Now())
		close(p.done)
		p.err = errors.New("dispatcher busy: the events are dispatched from the log")
	}
	return p, nil
}

// record is ev as the log stores it (its client id is its dedup key).
func (ev *accepted) record() eventlog.Record {
	r := eventlog.Record{InternalID: ev.internal.String(), Name: ev.ev.Name, Event: ev.norm, ReceivedAt: ev.received}
	if ev.ownID {
		r.ClientID = ev.ev.ID
	}
	return r
}

// logDispatched lists an event that was dispatched outside the log (a cron tick's).
func (a *App) logDispatched(ctx context.Context, ev *accepted, run string) error {
	var runs []string
	reason := ReasonRateLimited
	if run != "" {
		runs, reason = []string{run}, ""
	}
	return a.logOutcome(ctx, []*accepted{ev}, [][]string{runs}, []string{reason})
}

// dispatchThenLog dispatches events whose sender retries until this returns (a run's
// system events, from its local activity) and then logs them dispatched, in one write.
func (a *App) dispatchThenLog(ctx context.Context, evs []*accepted) error {
	a.intake.dispatched.Add(int64(len(evs)))
	runs, reasons, err := a.admit(ctx, evs)
	if err == nil {
		err = a.deliver(ctx, evs)
	}
	if err != nil {
		return err
	}
	return a.logOutcome(ctx, evs, runs, reasons)
}

// logOutcome appends dispatched events with their runs (or why none), one transaction.
func (a *App) logOutcome(ctx context.Context, evs []*accepted, runs [][]string, reasons []string) error {
	now := time.Now()
	recs := make([]eventlog.Record, len(evs))
	for i, ev := range evs {
		recs[i] = ev.record()
		recs[i].DispatchedAt, recs[i].Runs, recs[i].Reason = &now, runs[i], reasons[i]
	}
	if _, err := a.events.Append(ctx, a.opts.Environment, recs, now); err != nil {
		return fmt.Errorf("write events to the log: %w", err)
	}
	return nil
}

// startIntake starts the dispatcher of this process's accepted events, the claim loop, the
// lease keeper and retention; Close stops them.
func (a *App) startIntake() {
	ctx, cancel := context.WithCancel(context.Background())
	a.intake = &intake{queue: make(chan *pending, 4096), stop: cancel, held: map[string]int{},
		lease: cmp.Or(a.opts.intakeLease, dispatchLease), claimEvery: cmp.Or(a.opts.intakeClaimEvery, claimEvery)}
	a.intake.wg.Add(4)
	go func() { defer a.intake.wg.Done(); a.dispatchLoop(ctx) }()
	go func() { defer a.intake.wg.Done(); a.claimLoop(ctx) }()
	go func() { defer a.intake.wg.Done(); a.keepLeases(ctx) }()
	go func() { defer a.intake.wg.Done(); a.expireLoop(ctx) }()
}

// keepLeases renews the leases of the events this process holds, so that no other process
// claims an event queued here behind a backlog (and starts its runs a second time, or
// wastes a start on a run that exists). A renewal that fails leaves the lease to run out:
// at worst a second, idempotent dispatch.
func (a *App) keepLeases(ctx context.Context) {
	every(ctx, a.intake.lease/3, func() {
		if ids := a.intake.heldIDs(); len(ids) > 0 {
			if err := a.events.Retry(ctx, ids, time.Now().Add(a.intake.lease)); err != nil && ctx.Err() == nil {
				a.log.Warn("event log: renewing dispatch leases failed", "events", len(ids), "err", err)
			}
		}
	})
}

func (a *App) stopIntake() {
	if a.intake != nil {
		a.intake.stop()
		a.intake.wg.Wait()
	}
}

// dispatchLoop dispatches accepted events in the order they were committed, as many
// requests together as have queued (up to dispatchBatch events), so a burst of small
// requests shares round trips.
func (a *App) dispatchLoop(ctx context.Context) {
	for {
		var group []*pending
		select {
		case <-ctx.Done():
			return
		case p := <-a.intake.queue:
			group = append(group, p)
		}
		n := len(group[0].evs)
	more:
		for n < dispatchBatch {
			select {
			case p := <-a.intake.queue:
				group = append(group, p)
				n += len(p.evs)
			default:
				break more
			}
		}
		var evs []*accepted
		for _, p := range group {
			evs = append(evs, p.evs...)
		}
		err := a.dispatch(ctx, evs)
		for _, p := range group {
			p.err = err
			close(p.done)
		}
	}
}

// claimLoop dispatches the environment's events that no process dispatched: accepted by a
// process that died, or whose dispatch failed.
func (a *App) claimLoop(ctx context.Context) {
	every(ctx, a.intake.claimEvery, func() {
		for ctx.Err() == nil {
			recs, err := a.events.Claim(ctx, a.opts.Environment, dispatchBatch, time.Now().Add(a.intake.lease))
			if err != nil {
				a.log.Warn("event log: claiming undispatched events failed", "err", err)
				return
			}
			if len(recs) == 0 {
				return
			}
			evs := make([]*accepted, 0, len(recs))
			for _, r := range recs {
				ev, err := fromRecord(r)
				if err != nil { // cannot happen for what accept wrote; keep it out of the way
					a.log.Error("event log: unreadable event, marked dispatched without runs", "event", r.InternalID, "err", err)
					_ = a.events.Dispatched(ctx, []eventlog.Dispatch{{InternalID: r.InternalID, Reason: "unreadable: " + err.Error()}})
					continue
				}
				evs = append(evs, ev)
			}
			a.intake.hold(evs)
			if err := a.dispatch(ctx, evs); err != nil {
				return
			}
		}
	})
}

// every calls fn every d until ctx is done.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// dispatch runs the start path for evs, which this process holds, hands them to the waits
// and cancel rules they match, and records the outcome in the log; it releases them. On
// failure the events are left for a retry a moment later (every step of dispatch is
// idempotent).
func (a *App) dispatch(ctx context.Context, evs []*accepted) error {
	a.intake.dispatched.Add(int64(len(evs)))
	dctx, cancel := context.WithTimeout(ctx, dispatchTimeout)
	defer cancel()
	runs, reasons, err := a.admit(dctx, evs)
	if err == nil {
		err = a.deliver(dctx, evs)
	}
	if err == nil {
		ds := make([]eventlog.Dispatch, len(evs))
		for i, ev := range evs {
			ds[i] = eventlog.Dispatch{InternalID: ev.internal.String(), Runs: runs[i], Reason: reasons[i]}
		}
		err = a.events.Dispatched(dctx, ds)
	}
	a.intake.release(evs)
	if err != nil {
		a.log.Warn("dispatch failed; retried from the event log", "events", len(evs), "err", err)
		if rerr := a.events.Retry(context.WithoutCancel(ctx), idsOf(evs), time.Now().Add(dispatchRetry)); rerr != nil {
			a.log.Warn("event log: releasing the failed dispatch failed; its lease expires", "err", rerr)
		}
	}
	return err
}

// fromRecord is a logged event as the start path takes it.
func fromRecord(r eventlog.Record) (*accepted, error) {
	id, err := ulid.Parse(r.InternalID)
	if err != nil {
		return nil, err
	}
	ev := &accepted{internal: id, received: r.ReceivedAt, norm: r.Event, ownID: r.ClientID != ""}
	if err := json.Unmarshal(r.Event, &ev.ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// expireLoop deletes events older than the retention, in bounded batches.
func (a *App) expireLoop(ctx context.Context) {
	expire := func() {
		if _, err := a.events.Expire(ctx, time.Now().Add(-a.opts.EventRetention), expireBatch); err != nil && ctx.Err() == nil {
			a.log.Warn("event log: retention failed; retried later", "err", err)
		}
	}
	expire()
	every(ctx, expireEvery, expire)
}

// waitDispatched waits until the events of p have been dispatched by this process, or by
// the log's retry after a failed attempt (polling the log), within ctx.
func (a *App) waitDispatched(ctx context.Context, p *pending) error {
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if p.err == nil {
		return nil
	}
	return a.WaitDispatched(ctx, idsOf(p.evs)...)
}

func idsOf(evs []*accepted) []string {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.internal.String()
	}
	return ids
}

// WaitDispatched waits until the events (by internal id) have been dispatched, by any
// process: their runs are started and listed. Ingest returns at commit; this is for a
// caller that needs the runs next (Send waits by itself).
func (a *App) WaitDispatched(ctx context.Context, ids ...string) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for _, id := range ids {
		for {
			ev, err := a.Event(ctx, id)
			if err != nil {
				return err
			}
			if ev.DispatchedAt != nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("event %s is not dispatched yet: %w", id, ctx.Err())
			case <-t.C:
			}
		}
	}
	return nil
}
