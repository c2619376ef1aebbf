package adapter

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/eventlog"
	"github.com/tempestrun/tempest/internal/registry"
)

// PauseFunction pauses a function of the environment: every process stops starting its
// runs within a moment (a registry change notice), its events are still stored (listed
// with ReasonPaused when no other function took them) and its cron ticks start nothing;
// runs in flight go on. Pausing a paused function changes nothing.
func (a *App) PauseFunction(ctx context.Context, app, fn string) (*api.FunctionDetail, error) {
	d, err := a.DescribeFunction(ctx, app, fn)
	if err != nil || d.Paused {
		return d, err
	}
	if err := registry.SetPause(ctx, a.redis, a.opts.Environment, d.ID, registry.Pause{PausedAt: time.Now().UTC()}); err != nil {
		return nil, err
	}
	if err := a.reload(ctx); err != nil {
		return nil, err
	}
	return a.DescribeFunction(ctx, app, fn)
}

// ResumeFunction resumes a paused function: new events start runs again. With replay, the
// events received during its last pause (from a minute before it began, for events that
// were in flight then, to its end) that trigger it start their runs now, through its flow
// control. A run's id derives from its event, so an event that has its run already (or a
// resume retried) starts nothing twice; a function that is not paused replays its last
// pause again.
func (a *App) ResumeFunction(ctx context.Context, app, fn string, replay bool) (*api.Resumed, error) {
	d, err := a.DescribeFunction(ctx, app, fn)
	if err != nil {
		return nil, err
	}
	s, err := registry.Load(ctx, a.redis, a.opts.Environment)
	if err != nil {
		return nil, err
	}
	p, ok := s.Pauses[d.ID]
	if !ok {
		return nil, &api.InputError{Msg: fmt.Sprintf("function %s has never been paused", d.ID)}
	}
	if p.Paused() {
		now := time.Now().UTC()
		p.ResumedAt = &now
		if err := registry.SetPause(ctx, a.redis, a.opts.Environment, d.ID, p); err != nil {
			return nil, err
		}
		if err := a.reload(ctx); err != nil {
			return nil, err
		}
		if d, err = a.DescribeFunction(ctx, app, fn); err != nil {
			return nil, err
		}
	}
	out := &api.Resumed{Function: *d}
	if replay {
		if out.Replayed, err = a.replayPaused(ctx, d.ID, p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// reload applies the registry in this process now, not at the change notice.
func (a *App) reload(ctx context.Context) error {
	s, err := registry.Load(ctx, a.redis, a.opts.Environment)
	if err != nil {
		return err
	}
	a.applyRegistry(s)
	return nil
}

// pauseSlack is how long before a pause the replay of its events begins: an event
// accepted just before the pause may have been dispatched just after it.
const pauseSlack = time.Minute

// replayPaused starts the runs of the events of a pause that trigger function slug, a
// page of the log at a time, and records them under their events.
func (a *App) replayPaused(ctx context.Context, slug string, p registry.Pause) (*api.PausedReplay, error) {
	f, ok := a.routed(slug)
	if !ok {
		return nil, fmt.Errorf("function %s: %w", slug, ErrNotFound)
	}
	out := &api.PausedReplay{From: p.PausedAt.Add(-pauseSlack), Until: p.ResumedAt.Add(time.Millisecond)}
	filter := eventlog.Filter{After: out.From, Before: out.Until, Limit: 100}
	for {
		recs, err := a.events.List(ctx, a.opts.Environment, filter)
		if err != nil {
			return nil, fmt.Errorf("list the events of the pause: %w", err)
		}
		var cs []*candidate
		byRun := map[*candidate]eventlog.Record{}
		for _, rec := range recs {
			ev, err := fromRecord(rec)
			if err != nil || !f.fires(ev) {
				continue
			}
			c := &candidate{fn: f, run: runIDFor(f, ev), evs: []*accepted{ev}}
			cs = append(cs, c)
			byRun[c] = rec
		}
		if err := a.admitCandidates(ctx, cs); err != nil {
			return nil, err
		}
		var ds []eventlog.Dispatch
		for _, c := range cs {
			out.Events++
			if c.listed == "" {
				continue
			}
			out.Runs++
			// An event still waiting for dispatch is left to the dispatcher (it routes to the
			// resumed function now): marking it dispatched here would skip its other functions.
			rec := byRun[c]
			if rec.DispatchedAt != nil && !slices.Contains(rec.Runs, c.listed) {
				ds = append(ds, eventlog.Dispatch{InternalID: rec.InternalID, Runs: append(rec.Runs, c.listed)})
			}
		}
		if err := a.events.Dispatched(ctx, ds); err != nil {
			return nil, err
		}
		if len(recs) < filter.Limit {
			return out, nil
		}
		filter.Cursor = recs[len(recs)-1].InternalID
	}
}
