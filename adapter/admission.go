package adapter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/metrics"
	"github.com/tempestrun/tempest/workflows"
)

// The start path, top to bottom, as the README draws it:
//
//	dedup → route → rate limit / idempotency → debounce / batch → singleton → throttle → start
//
// Dedup happens at intake (ingest: an event with its own id takes the internal id of its
// first send); admit runs the rest for the events of one request (or one cron tick). A
// buffered event leaves it at debounce/batch, and its buffer re-enters at singleton when it
// flushes (startFlush).
// Every stage is idempotent for a retried dispatch of the same events: run ids derive from
// event ids, decisions are remembered in Redis, and Temporal rejects a second start.

// MemoTraceID is the memo field of a run's OpenTelemetry trace id (tracing on).
const MemoTraceID = workflows.MemoTraceID

// candidate is one run the start path considers: a function and the events it would run
// with (the first is the trigger).
type candidate struct {
	fn  *function
	run string
	evs []*accepted
	at  int // the trigger's index in its request, where the run is listed

	replayed bool      // an earlier dispatch of the same run decided already
	dropped  string    // why the run will not start ("" it may)
	lock     string    // the singleton lock the run holds ("" none)
	startAt  time.Time // its throttle slot
	listed   string    // the id to list under the event ("" none)

	// A rerun: the run it reruns, and from which step with which results reused.
	rerunOf  string
	replayID string
	fromStep *workflows.FromStep
	reused   []workflows.StepMemo
}

// admit takes accepted events through the start path and returns, per event, the run ids
// to list under it and, for an event that started none, why. It returns once every run it
// admits is durable in Temporal.
func (a *App) admit(ctx context.Context, evs []*accepted) (runs [][]string, reasons []string, err error) {
	// Route: every function of the environment whose trigger the event fires.
	var all []*candidate
	for i, ev := range evs {
		for _, f := range a.match(ev) {
			all = append(all, &candidate{fn: f, run: runIDFor(f, ev), evs: []*accepted{ev}, at: i})
		}
	}
	if err := a.admitCandidates(ctx, all); err != nil {
		return nil, nil, err
	}
	runs, reasons = make([][]string, len(evs)), make([]string, len(evs))
	for i := range evs {
		reasons[i] = ReasonNoFunction
	}
	for _, c := range all {
		switch {
		case c.listed != "":
			if !slices.Contains(runs[c.at], c.listed) {
				runs[c.at] = append(runs[c.at], c.listed)
			}
		case reasons[c.at] == ReasonNoFunction: // the first candidate's reason is the event's
			reasons[c.at] = cmp.Or(c.dropped, ReasonDuplicate)
		}
	}
	for i := range evs {
		if len(runs[i]) > 0 {
			reasons[i] = ""
		} else if reasons[i] == ReasonNoFunction && a.matchesPaused(evs[i]) {
			reasons[i] = ReasonPaused
		}
	}
	return runs, reasons, nil
}

// startOne takes one event for f through the start path (a cron tick's, which no event
// trigger routes); it returns the id to list under the event ("" none).
func (a *App) startOne(ctx context.Context, f *function, ev *accepted) (string, error) {
	c := &candidate{fn: f, run: runIDFor(f, ev), evs: []*accepted{ev}}
	err := a.admitCandidates(ctx, []*candidate{c})
	return c.listed, err
}

// admitCandidates is the start path after routing: rate limit, buffers, then the rest.
func (a *App) admitCandidates(ctx context.Context, cs []*candidate) error {
	cs, err := a.rateLimit(ctx, cs)
	if err == nil {
		cs, err = a.bufferEvents(ctx, cs)
	}
	if err == nil {
		err = a.startAdmitted(ctx, cs)
	}
	return err
}

// Why an event started no run, as GET /v1/events lists it.
const (
	ReasonNoFunction  = "no matching function"
	ReasonRateLimited = "rate limited"
	ReasonIdempotency = "deduplicated by idempotency key"
	// ReasonDuplicate: the event was already in a buffer (sent again).
	ReasonDuplicate = "duplicate"
	// ReasonPaused: the only functions it triggers are paused (resume can replay it).
	ReasonPaused = "function paused"
)

// startAdmitted is the rest of the start path for runs past rate limits and buffers (and
// for flushed buffers): singleton, throttle, start.
func (a *App) startAdmitted(ctx context.Context, cs []*candidate) error {
	cs, err := a.singleton(ctx, cs)
	if err != nil {
		return err
	}
	if err := a.throttle(ctx, cs); err != nil {
		return err
	}
	return a.start(ctx, cs)
}

// rateLimit drops the runs over their function's rate limit or idempotency key (lossy), in
// one round trip for the whole request. A replayed decision whose run exists (started, or
// recorded as skipped) is done: it is listed and goes no further.
//
// A run with neither a rate limit nor a singleton skips the round trip: there is nothing to
// decide, and nothing a retried dispatch must see again (its start is idempotent by run id;
// a singleton's must not take the lock, or cancel its holder, a second time).
func (a *App) rateLimit(ctx context.Context, cs []*candidate) ([]*candidate, error) {
	var reqs []flowcontrol.Admission
	var decided []*candidate
	for _, c := range cs {
		ev := c.evs[0]
		g := c.fn.rateLimit.gcra(ev)
		if g == nil && c.fn.singletonMode == "" {
			continue
		}
		reqs = append(reqs, flowcontrol.Admission{Function: c.fn.slug, RunID: c.run, Remember: ev.remember(), RateLimit: g})
		decided = append(decided, c)
	}
	decs, err := a.admitter.RateLimit(ctx, reqs)
	if err != nil {
		return nil, err
	}
	for i, c := range decided {
		if decs[i].Outcome != flowcontrol.Admitted {
			c.dropped = c.fn.rateLimit.reason // listed under no run
			if !decs[i].Replayed {
				decision := metrics.RateLimited
				if c.dropped == ReasonIdempotency {
					decision = metrics.Deduplicated
				}
				a.metrics.FlowControl.WithLabelValues(c.fn.slug, decision).Inc()
			}
			continue
		}
		if c.replayed = decs[i].Replayed; c.replayed && !c.fn.buffered(c.evs[0]) {
			_, _, err := a.describe(ctx, c.run)
			if err == nil {
				c.listed = c.run
				continue
			}
			if !errors.Is(err, ErrNotFound) {
				return nil, err
			}
		}
	}
	out := make([]*candidate, 0, len(cs)) // in log order, for the throttle
	for _, c := range cs {
		if c.dropped == "" && c.listed == "" {
			out = append(out, c)
		}
	}
	return out, nil
}

// bufferEvents puts the events of debounced and batched functions into their buffers
// (they start when the buffer flushes) and returns the runs that start now.
func (a *App) bufferEvents(ctx context.Context, cs []*candidate) ([]*candidate, error) {
	var now []*candidate
	for _, c := range cs {
		if !c.fn.buffered(c.evs[0]) {
			now = append(now, c)
			continue
		}
		listed, err := a.buffer(ctx, c.fn, c.evs[0])
		if err != nil {
			return nil, err
		}
		a.metrics.FlowControl.WithLabelValues(c.fn.slug, metrics.Buffered).Inc()
		c.listed = listed
	}
	return now, nil
}

// singleton applies each function's singleton rule; a skipped run is recorded (and listed)
// and goes no further. It comes before the throttle, so a skipped run takes no slot.
func (a *App) singleton(ctx context.Context, cs []*candidate) ([]*candidate, error) {
	var out []*candidate
	for _, c := range cs {
		lock, skip, err := a.admitSingleton(ctx, c.fn, c.run, c.evs[0])
		if err != nil {
			return nil, err
		}
		if skip {
			c.listed = c.run
			continue
		}
		c.lock = lock
		out = append(out, c)
	}
	return out, nil
}

// throttle gives every run its start slot in one round trip, in order: the events of one
// request take their slots as if sent one by one.
func (a *App) throttle(ctx context.Context, cs []*candidate) error {
	var reqs []flowcontrol.Admission
	var throttled []*candidate
	now := time.Now()
	for _, c := range cs {
		c.startAt = now
		if g := c.fn.throttle.gcra(c.evs[0]); g != nil {
			reqs = append(reqs, flowcontrol.Admission{Function: c.fn.slug, RunID: c.run, Remember: c.evs[0].remember(), Throttle: g})
			throttled = append(throttled, c)
		}
	}
	decs, err := a.admitter.Throttle(ctx, reqs)
	if err != nil {
		return err
	}
	for i, c := range throttled {
		c.startAt = decs[i].StartAt
		if d := c.startAt.Sub(now); d > 0 {
			a.metrics.FlowControl.WithLabelValues(c.fn.slug, metrics.Throttled).Inc()
			a.metrics.ThrottleDelay.WithLabelValues(c.fn.slug).Observe(d.Seconds())
		}
	}
	return nil
}

// start starts the runs in Temporal, startConcurrency at a time, and returns once every
// start is durable (or the first error).
func (a *App) start(ctx context.Context, cs []*candidate) error {
	g := fanOut()
	for _, c := range cs {
		g.Go(func() error {
			if err := a.launch(ctx, c); err != nil {
				return err
			}
			c.listed = c.run
			return nil
		})
	}
	return g.Wait()
}

// launch starts one run at its slot (now, or later when throttled).
func (a *App) launch(ctx context.Context, c *candidate) error {
	f, ev := c.fn, c.evs[0]
	in := workflows.RunInput{
		Singleton:  c.lock,
		FunctionID: f.slug, RunID: c.run, Retries: f.retries,
		EventID: ev.internal.String(), Cancel: f.cancel, ScheduledAt: time.Now().UnixMilli(),
		StartTimeout: f.startTimeout, FinishTimeout: f.finishTimeout,
		Concurrency: f.leases(ev), Priority: f.priorityFactor(ev), Throttle: f.gate(ev),
		RerunOf: c.rerunOf, FromStep: c.fromStep, Reused: c.reused,
	}
	if in.Throttle != nil {
		in.Throttle.SlotMS = c.startAt.UnixMilli()
	}
	for _, e := range c.evs {
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
	summary := fmt.Sprintf("%s ← %s (event %s)", f.slug, shorten(ev.ev.Name, 100), ev.internal)
	sa := []temporal.SearchAttributeUpdate{
		SAFunctionID.ValueSet(f.slug), SAEventID.ValueSet(ev.internal.String()), SAEventName.ValueSet(ev.ev.Name),
	}
	if c.rerunOf != "" { // linked both ways: this run names the original, the original lists it
		summary = fmt.Sprintf("%s rerun of %s", f.slug, c.rerunOf)
		if c.fromStep != nil {
			summary += " from step " + shorten(c.fromStep.ID, 100)
		}
		sa = append(sa, SARerunOf.ValueSet(c.rerunOf))
	}
	if c.replayID != "" {
		summary = fmt.Sprintf("%s replay %s of %s", f.slug, c.replayID, c.rerunOf)
		sa = append(sa, SAReplayID.ValueSet(c.replayID))
	}
	delay := max(time.Until(c.startAt), 0)
	var memo map[string]any
	if sc := ev.span; sc.IsValid() { // the run's spans join the trace of the request
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		memo = map[string]any{MemoTraceID: sc.TraceID().String()}
	}
	_, err := a.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		Memo:                                     memo,
		ID:                                       c.run,
		TaskQueue:                                f.taskQueue,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		// A throttled run waits in Temporal, durable, until its slot.
		StartDelay: delay,
		// When this process runs the app's worker, the first workflow task comes back in the
		// start response and skips matching (about 2 ms instead of 50 ms to the first step
		// here); without a local worker the server dispatches as usual.
		EnableEagerStart:      delay == 0,
		Priority:              temporal.Priority{PriorityKey: f.priorityKey(in.Priority)},
		StaticSummary:         summary,
		TypedSearchAttributes: temporal.NewSearchAttributes(sa...),
	}, f.slug, in)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &already) {
		return fmt.Errorf("start run %s of %s: %w", c.run, f.slug, err)
	}
	if err == nil {
		a.metrics.RunsStarted.WithLabelValues(f.slug).Inc()
	}
	return nil
}
