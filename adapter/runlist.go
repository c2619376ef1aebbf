package adapter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/expr"
	"github.com/tempestrun/tempest/internal/registry"
)

// Run lists come from Temporal's visibility (the runs' search attributes), not from a copy
// of the runs. Temporal's SQL visibility has no ORDER BY (it returns runs by close time,
// then start time), so a list ordered by another time reads it in windows of that time:
// a window is sized by counting (CountWorkflowExecutions) to hold at most
// runListWindow runs, read whole, and sorted here by (time, run id). The cursor is the
// (time, run id) of a page's last run, so pages neither repeat nor skip runs, also while
// new runs arrive.
const (
	// runListWindow bounds the runs one window reads.
	runListWindow = 1000
	// runListScan bounds the runs one page reads when an `if` filters most of them out:
	// the page then ends early, with a cursor and hasMore.
	runListScan = 10 * runListWindow
)

// runListEpoch is the lower end of an unbounded list (no run is older).
var runListEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// ListRuns returns one page of the environment's runs (GET /v2/runs).
func (a *App) ListRuns(ctx context.Context, q api.RunQuery) (*api.RunPage, error) {
	l, err := a.newRunLister(ctx, q)
	if err != nil {
		return nil, err
	}
	if l.none {
		return &api.RunPage{}, nil
	}
	return l.page(ctx)
}

// runLister reads one page.
type runLister struct {
	a      *App
	q      api.RunQuery
	filter string // the visibility query without the time bounds
	field  string // the visibility column of q.TimeField
	cond   *expr.Program
	apps   map[string]string // function slug -> app id (the registry)

	none bool // no function to list runs of: an empty page

	lo, hi time.Time // the list's time range, both inclusive
	// pos is where the page starts: runs strictly after it in list order. posID "" (and
	// posAll) means every run at pos.At was listed.
	pos    time.Time
	posID  string
	posAll bool
}

func (a *App) newRunLister(ctx context.Context, q api.RunQuery) (*runLister, error) {

	s, err := registry.Load(ctx, a.redis, a.opts.Environment)
	if err != nil {
		return nil, err
	}
	l := &runLister{a: a, q: q, apps: functionApps(s)}
	var clauses []string
	switch {
	case q.FunctionID != "":
		slug, err := l.functionSlug(s, q.AppID, q.FunctionID)
		if err != nil {
			return nil, err
		}
		clauses = append(clauses, fmt.Sprintf("%s = %s", SAFunctionID.GetName(), quote(slug)))
	default:
		// The environment's runs are those of the functions its registry holds: several
		// environments may share a namespace. A removed app's runs stay listable by their
		// fully qualified function_id.
		apps := s.Apps
		if q.AppID != "" {
			i := slices.IndexFunc(s.Apps, func(r registry.App) bool { return r.ID == q.AppID })
			if i < 0 {
				return nil, fmt.Errorf("app %q: %w", q.AppID, api.ErrAppNotFound)
			}
			apps = s.Apps[i : i+1]
		}
		var slugs []string
		for _, app := range apps {
			for _, f := range app.Functions {
				slugs = append(slugs, quote(f.ID))
			}
		}
		if len(slugs) == 0 {
			l.none = true
			slugs = append(slugs, "''")
		}
		clauses = append(clauses, fmt.Sprintf("%s IN (%s)", SAFunctionID.GetName(), strings.Join(slugs, ", ")))
	}
	if st := statusClause(q.Statuses, time.Now()); st != "" {
		clauses = append(clauses, st)
	}
	l.filter = strings.Join(clauses, " AND ")
	l.field = map[string]string{api.TimeQueued: "StartTime", api.TimeStarted: "ExecutionTime", api.TimeEnded: "CloseTime"}[q.TimeField]
	if q.If != "" {
		if l.cond, err = expr.CompileBool(q.If); err != nil {
			return nil, &api.InputError{Msg: "if: " + err.Error()}
		}
	}
	// Only ExecutionTime (a throttled run's start) may lie ahead; a minute covers clock skew
	// between this process and Temporal's.
	l.lo, l.hi = runListEpoch, time.Now().Add(time.Minute)
	if l.field == "ExecutionTime" {
		l.hi = time.Now().Add(24 * time.Hour * 366)
	}
	if !q.From.IsZero() {
		l.lo = q.From
	}
	if !q.Until.IsZero() {
		l.hi = q.Until.Add(-time.Nanosecond)
	}
	l.pos, l.posAll = l.hi.Add(time.Nanosecond), true
	if !q.Desc {
		l.pos = l.lo.Add(-time.Nanosecond)
	}
	if q.Cursor != "" {
		c, err := api.DecodeRunCursor(q.Cursor)
		if err != nil {
			return nil, &api.InputError{Msg: err.Error()}
		}
		l.pos, l.posID, l.posAll = c.At, c.ID, false
	}
	return l, nil
}

// functionSlug resolves a function named by its id within app (or fully qualified).
func (l *runLister) functionSlug(s registry.Snapshot, app, fn string) (string, error) {
	if app == "" {
		return fn, nil // fully qualified; a function no app defines now still has its runs
	}
	i := slices.IndexFunc(s.Apps, func(r registry.App) bool { return r.ID == app })
	if i < 0 {
		return "", fmt.Errorf("app %q: %w", app, api.ErrAppNotFound)
	}
	for _, id := range []string{fn, app + "-" + fn} {
		if slices.ContainsFunc(s.Apps[i].Functions, func(f registry.Function) bool { return f.ID == id }) {
			return id, nil
		}
	}
	return "", fmt.Errorf("function %q of app %q: %w", fn, app, api.ErrNotFound)
}

// statusClause selects the v2 statuses ("" for all).
func statusClause(statuses []string, now time.Time) string {
	skipped := quote(skippedWorkflow)
	var or []string
	for _, s := range statuses {
		switch s {
		case api.V2Queued:
			or = append(or, fmt.Sprintf("(ExecutionStatus = 'Running' AND ExecutionTime > %s)", quote(now.UTC().Format(time.RFC3339Nano))))
		case api.V2Running:
			or = append(or, fmt.Sprintf("(ExecutionStatus = 'Running' AND ExecutionTime <= %s)", quote(now.UTC().Format(time.RFC3339Nano))))
		case api.V2Completed:
			or = append(or, "(ExecutionStatus = 'Completed' AND WorkflowType != "+skipped+")")
		case api.V2Failed:
			or = append(or, "ExecutionStatus IN ('Failed', 'Terminated', 'TimedOut')")
		case api.V2Cancelled:
			or = append(or, "ExecutionStatus = 'Canceled'")
		case api.V2Skipped:
			or = append(or, "WorkflowType = "+skipped)
		}
	}
	if len(or) == 0 {
		return ""
	}
	return "(" + strings.Join(or, " OR ") + ")"
}

// quote is a string literal of Temporal's list query language.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// listed is a run read from visibility, with the time the list orders it by.
type listed struct {
	at   time.Time
	info *workflowpb.WorkflowExecutionInfo
}

func (r listed) id() string { return r.info.GetExecution().GetWorkflowId() }

// after reports whether r comes after the position (t, id) in list order; all: every run
// at t was listed.
func (l *runLister) after(r listed, t time.Time, id string, all bool) bool {
	c := r.at.Compare(t)
	if c == 0 {
		if all {
			return false
		}
		c = strings.Compare(r.id(), id)
	}
	if l.q.Desc {
		return c < 0
	}
	return c > 0
}

// page reads windows from the position on until the page is full, the range is done, or
// runListScan runs were read.
func (l *runLister) page(ctx context.Context) (*api.RunPage, error) {
	out := &api.RunPage{}
	scanned := 0
	for {
		lo, hi, last, err := l.window(ctx)
		if err != nil {
			return nil, err
		}
		runs, err := l.read(ctx, lo, hi)
		if err != nil {
			return nil, err
		}
		for _, r := range runs {
			if len(out.Runs) == l.q.Limit || scanned == runListScan {
				out.HasMore = true
				return out, l.finish(out)
			}
			scanned++
			ok, err := l.matches(ctx, r)
			if err != nil {
				return nil, err
			}
			l.pos, l.posID, l.posAll = r.at, r.id(), false
			if ok {
				v, err := l.a.runV2(ctx, r.info, l.apps, l.q.IncludeOutput)
				if err != nil {
					return nil, err
				}
				out.Runs = append(out.Runs, *v)
			}
		}
		// The whole window is listed: continue past its far edge.
		if l.q.Desc {
			l.pos = lo
		} else {
			l.pos = hi
		}
		l.posID, l.posAll = "", true
		if last {
			return out, l.finish(out)
		}
		if len(out.Runs) == l.q.Limit || scanned >= runListScan {
			more, err := l.count(ctx, l.rest())
			if err != nil {
				return nil, err
			}
			out.HasMore = more > 0
			return out, l.finish(out)
		}
	}
}

// finish sets the page's cursor: the position after its last run read.
func (l *runLister) finish(out *api.RunPage) error {
	if out.HasMore {
		c := api.RunCursor{At: l.pos, ID: l.posID, Q: l.q.Key()}
		if l.posAll { // every run at pos was listed: continue strictly past it
			c.At, c.ID = l.step(l.pos), ""
			if !l.q.Desc {
				c.ID = "\U0010FFFF"
			}
		}
		out.Cursor = c.Encode()
	}
	return nil
}

// step is the next instant past t in list order.
func (l *runLister) step(t time.Time) time.Time {
	if l.q.Desc {
		return t.Add(-time.Nanosecond)
	}
	return t.Add(time.Nanosecond)
}

// rest is the part of the range still to list, as a visibility time condition.
func (l *runLister) rest() string {
	if l.q.Desc {
		return l.between(l.lo, l.step(l.pos))
	}
	return l.between(l.step(l.pos), l.hi)
}

func (l *runLister) between(lo, hi time.Time) string {
	return fmt.Sprintf("%s AND %s >= %s AND %s <= %s", l.filter, l.field, quote(lo.UTC().Format(time.RFC3339Nano)),
		l.field, quote(hi.UTC().Format(time.RFC3339Nano)))
}

func (l *runLister) count(ctx context.Context, query string) (int64, error) {
	resp, err := l.a.temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: l.a.opts.Namespace, Query: query})
	if err != nil {
		return 0, fmt.Errorf("count runs: %w", err)
	}
	return resp.GetCount(), nil
}

// window picks the next window from the position: [lo, hi] holding at most runListWindow
// runs (unless more share one instant) and reaching as far as the page may need; last is
// true when it reaches the end of the range.
func (l *runLister) window(ctx context.Context) (lo, hi time.Time, last bool, err error) {
	// The position's own instant stays in the window while some runs at it are unlisted.
	near := l.pos
	if l.posAll {
		near = l.step(l.pos)
	}
	end := l.lo
	if !l.q.Desc {
		end = l.hi
	}
	span := func(w time.Duration) (time.Time, time.Time, bool) {
		if l.q.Desc {
			far := near.Add(-w)
			if !far.After(end) {
				return end, near, true
			}
			return far, near, false
		}
		far := near.Add(w)
		if !far.Before(end) {
			return near, end, true
		}
		return near, far, false
	}
	if (l.q.Desc && near.Before(end)) || (!l.q.Desc && near.After(end)) {
		return near, near, true, nil // nothing left
	}
	// Aim for a window of need..2*need runs: a window is read whole, and a row read costs
	// more than a count. The far edge is searched between a width known to hold too few
	// (good) and one known to hold too many (bad): by the density counted, else halving.
	// After 40 counts any window that fits runListWindow will do.
	need := int64(l.q.Limit)
	target := min(2*need, runListWindow)
	good, bad := time.Duration(0), time.Duration(0)
	w := time.Minute
	for try := range 64 {
		lo, hi, last := span(w)
		n, err := l.count(ctx, l.between(lo, hi))
		if err != nil {
			return lo, hi, last, err
		}
		w = hi.Sub(lo) // the window may have been cut at the range's end
		switch {
		case n > target && w > time.Microsecond && (n > runListWindow || try < 40):
			bad = w
		case n >= need || last || n > target:
			return lo, hi, last, nil
		default:
			good = w
		}
		next := w * 8
		if n > 0 {
			next = time.Duration(float64(w) * 1.5 * float64(need) / float64(n))
		}
		if bad > 0 && (next >= bad || next <= good) {
			next = good + (bad-good)/2
		}
		if bad > 0 && bad-good < time.Microsecond {
			lo, hi, last := span(good)
			return lo, hi, last, nil
		}
		w = max(next, time.Microsecond)
	}
	lo, hi, last = span(w)
	return lo, hi, last, nil
}

// read lists the window's runs after the position, in list order.
func (l *runLister) read(ctx context.Context, lo, hi time.Time) ([]listed, error) {
	var out []listed
	var token []byte
	for {
		page, err := l.a.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: l.a.opts.Namespace, Query: l.between(lo, hi), PageSize: runListWindow, NextPageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		for _, info := range page.GetExecutions() {
			r := listed{info: info, at: l.timeOf(info)}
			if l.after(r, l.pos, l.posID, l.posAll) {
				out = append(out, r)
			}
		}
		if token = page.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	slices.SortFunc(out, func(x, y listed) int {
		c := cmp.Or(x.at.Compare(y.at), strings.Compare(x.id(), y.id()))
		if l.q.Desc {
			return -c
		}
		return c
	})
	return out, nil
}

func (l *runLister) timeOf(info *workflowpb.WorkflowExecutionInfo) time.Time {
	switch l.field {
	case "ExecutionTime":
		return info.GetExecutionTime().AsTime()
	case "CloseTime":
		return info.GetCloseTime().AsTime()
	}
	return info.GetStartTime().AsTime()
}

func (l *runLister) matches(ctx context.Context, r listed) (bool, error) {
	if l.cond == nil {
		return true, nil
	}
	ok, err := l.a.triggerMatches(ctx, l.cond, r.info)
	if err != nil {
		return false, &api.InputError{Msg: fmt.Sprintf("if: run %s: %v", r.id(), err)}
	}
	return ok, nil
}

// runV2 is a listed run in the v2 shape (its output loaded when asked).
func (a *App) runV2(ctx context.Context, info *workflowpb.WorkflowExecutionInfo, apps map[string]string, withOutput bool) (*api.RunV2, error) {
	dc := converter.GetDefaultDataConverter()
	sa := info.GetSearchAttributes().GetIndexedFields()
	r := &api.RunV2{ID: info.GetExecution().GetWorkflowId(), QueuedAt: info.GetStartTime().AsTime()}
	if p := sa[SAFunctionID.GetName()]; p != nil {
		_ = dc.FromPayload(p, &r.Function.ID)
	}
	if p := sa[SAEventID.GetName()]; p != nil {
		_ = dc.FromPayload(p, &r.Trigger.EventID)
	}
	if p := sa[SAEventName.GetName()]; p != nil {
		_ = dc.FromPayload(p, &r.Trigger.EventName)
	}
	if p := sa[SARerunOf.GetName()]; p != nil {
		_ = dc.FromPayload(p, &r.RerunOf)
	}
	if p := info.GetMemo().GetFields()[MemoTraceID]; p != nil {
		_ = dc.FromPayload(p, &r.TraceID)
	}
	r.App.ID = apps[r.Function.ID]
	started := info.GetExecutionTime().AsTime()
	if info.GetExecutionTime() == nil {
		started = r.QueuedAt
	}
	r.StartAt = &started
	r.Status = v2Status(info, time.Now())
	if info.GetCloseTime() != nil {
		end := info.GetCloseTime().AsTime()
		d := max(end.Sub(started), 0).Milliseconds()
		r.EndedAt, r.DurationMS = &end, &d
	}
	if r.Status == api.V2Queued {
		r.DurationMS = nil
	}
	if withOutput && info.GetCloseTime() != nil {
		run, err := a.Run(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		r.Output = run.Output
	}
	return r, nil
}

// v2Status is a run's status as the v2 surface names it.
func v2Status(info *workflowpb.WorkflowExecutionInfo, now time.Time) string {
	if info.GetType().GetName() == skippedWorkflow {
		return api.V2Skipped
	}
	switch info.GetStatus() {
	case enums.WORKFLOW_EXECUTION_STATUS_RUNNING:
		if et := info.GetExecutionTime(); et != nil && et.AsTime().After(now) {
			return api.V2Queued
		}
		return api.V2Running
	case enums.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return api.V2Completed
	case enums.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return api.V2Cancelled
	default:
		return api.V2Failed
	}
}

// RunV2 is one run in the v2 shape, with its output once it ended.
func (a *App) RunV2(ctx context.Context, id string) (*api.RunV2, error) {
	s, err := registry.Load(ctx, a.redis, a.opts.Environment)
	if err != nil {
		return nil, err
	}
	r, err := a.runV2ByID(ctx, id, functionApps(s))
	if err != nil || r.Status == api.V2Skipped {
		return r, err
	}
	r.Reruns, err = a.reruns(ctx, id)
	return r, err
}

func (a *App) runV2ByID(ctx context.Context, id string, apps map[string]string) (*api.RunV2, error) {
	desc, err := a.temporal.DescribeWorkflowExecution(ctx, id, "")
	if err == nil {
		return a.runV2(ctx, desc.GetWorkflowExecutionInfo(), apps, true)
	}
	// Not in Temporal: a skipped run whose record is only in Redis, or not found.
	run, _, err := a.describe(ctx, id)
	if err != nil {
		return nil, err
	}
	return &api.RunV2{ID: run.RunID, Function: api.RunFunc{ID: run.FunctionID}, App: api.RunApp{ID: apps[run.FunctionID]},
		Status: api.V2Skipped, QueuedAt: run.RunStartedAt, EndedAt: run.EndedAt, Trigger: api.RunTrigger{EventID: run.EventID},
		Output: run.Output}, nil
}

// EventRunsV2 are the runs an event started, in the v2 shape.
func (a *App) EventRunsV2(ctx context.Context, id string) ([]api.RunV2, error) {
	rec, err := a.logged(ctx, id)
	if err != nil {
		return nil, err
	}
	s, err := registry.Load(ctx, a.redis, a.opts.Environment)
	if err != nil {
		return nil, err
	}
	apps := functionApps(s) // one registry read for all the event's runs
	out := make([]api.RunV2, 0, len(rec.Runs))
	for _, rid := range rec.Runs {
		r, err := a.runV2ByID(ctx, rid, apps)
		if errors.Is(err, ErrNotFound) {
			continue // a debounced or batched run that has not started yet
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, nil
}

// functionApps maps each function of the registry to its app.
func functionApps(s registry.Snapshot) map[string]string {
	m := map[string]string{}
	for _, app := range s.Apps {
		for _, f := range app.Functions {
			m[f.ID] = app.ID
		}
	}
	return m
}
