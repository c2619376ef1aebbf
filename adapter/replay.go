package adapter

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/expr"
	"github.com/tempestrun/tempest/internal/ids"
	"github.com/tempestrun/tempest/workflows"
)

// A bulk replay is a Temporal workflow on the task queue of the function's app: it lists
// the matching runs once, then starts their reruns in paced batches (local activities). It
// survives any process's crash (another worker of the app resumes it from its history),
// and each original run is replayed at most once: a rerun's id derives from the replay and
// the original, a batch skips the reruns that exist, and Temporal rejects a second start.

// replayWorkflowType is the workflow type of a bulk replay.
const replayWorkflowType = "tempest.replay"

// replayInput is a replay's workflow input: the request, resolved.
type replayInput struct {
	ID       string            `json:"id"`
	Function string            `json:"function"` // fully qualified id
	Request  api.ReplayRequest `json:"request"`
}

// replayProgress is a replay's state: its query answer while it runs, its result after.
type replayProgress struct {
	Matched   *int     `json:"matched"`
	Started   int      `json:"started"`
	Skipped   int      `json:"skipped"`
	Errors    []string `json:"errors,omitempty"`
	Cancelled bool     `json:"cancelled,omitempty"`
	// Ended is when a batch ended (unix ms): workflow time stands still while a local
	// activity runs, so the next batch's timer counts from here.
	Ended int64 `json:"ended,omitempty"`
}

// maxReplayErrors is how many skip reasons a replay keeps.
const maxReplayErrors = 10

// replayWorkflowID names a replay's workflow: environments may share a namespace.
func (a *App) replayWorkflowID(id string) string {
	return "tempest-replay:" + a.opts.Environment + ":" + id
}

// replayStatuses are the Temporal statuses of a replay's v2 statuses.
func replayStatuses(statuses []string) []string {
	var out []string
	for _, s := range statuses {
		switch s {
		case api.V2Failed:
			out = append(out, "'Failed'", "'Terminated'", "'TimedOut'")
		case api.V2Cancelled:
			out = append(out, "'Canceled'")
		case api.V2Completed:
			out = append(out, "'Completed'")
		}
	}
	return out
}

// replayQuery is the visibility query of a replay's candidate runs.
func replayQuery(slug string, r api.ReplayRequest) string {
	return fmt.Sprintf("%s = %s AND WorkflowType = %s AND ExecutionStatus IN (%s) AND StartTime >= %s AND StartTime <= %s",
		SAFunctionID.GetName(), quote(slug), quote(slug), strings.Join(replayStatuses(r.Statuses), ", "),
		quote(r.From.UTC().Format(time.RFC3339Nano)), quote(r.Until.UTC().Format(time.RFC3339Nano)))
}

// StartReplay starts a bulk replay of a function's runs (a validated request).
func (a *App) StartReplay(ctx context.Context, req api.ReplayRequest) (*api.Replay, error) {
	routes := a.routes.Load()
	f := routes.bySlug[req.AppID+"-"+req.FunctionID]
	if f == nil && strings.HasPrefix(req.FunctionID, req.AppID+"-") { // fully qualified
		f = routes.bySlug[req.FunctionID]
	}
	if f == nil {
		return nil, fmt.Errorf("function %q of app %q: %w", req.FunctionID, req.AppID, ErrNotFound)
	}
	if req.If != "" {
		if _, err := expr.CompileBool(req.If); err != nil {
			return nil, &api.InputError{Msg: "if: " + err.Error()}
		}
	}
	n, err := a.temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: a.opts.Namespace, Query: replayQuery(f.slug, req),
	})
	if err != nil {
		return nil, fmt.Errorf("count the runs to replay: %w", err)
	}
	if n.GetCount() > api.MaxReplayRuns {
		return nil, &api.InputError{Msg: fmt.Sprintf("%d runs match, over the limit of %d per replay: split from/until into several replays", n.GetCount(), api.MaxReplayRuns)}
	}
	in := replayInput{ID: ids.NewEventID(time.Now()).String(), Function: f.slug, Request: req}
	_, err = a.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: a.replayWorkflowID(in.ID), TaskQueue: f.taskQueue,
		StaticSummary: shorten(fmt.Sprintf("replay %s of %s (%s)", in.ID, f.slug, req.Name), 300),
	}, replayWorkflowType, in)
	if err != nil {
		return nil, fmt.Errorf("start replay: %w", err)
	}
	return a.Replay(ctx, in.ID)
}

// replayWorkflow lists the runs once, then starts their reruns at the request's rate: a
// batch of about one second's worth at a time, so the history grows by batches, not runs.
func (a *App) replayWorkflow(ctx workflow.Context, in replayInput) (replayProgress, error) {
	var p replayProgress
	if err := workflow.SetQueryHandler(ctx, "progress", func() (replayProgress, error) { return p, nil }); err != nil {
		return p, err
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: 24 * time.Hour, StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{MaximumInterval: 10 * time.Second}, Summary: "list runs to replay",
	})
	var runs []string
	if err := workflow.ExecuteLocalActivity(lctx, a.replayList, in).Get(lctx, &runs); err != nil {
		if temporal.IsCanceledError(err) {
			p.Cancelled = true
			return p, nil
		}
		return p, err
	}
	n := len(runs)
	p.Matched = &n
	per, period := replayPace(in.Request.Rate)
	born := workflow.GetInfo(ctx).WorkflowStartTime
	// Batches are due a period apart. A replay held up by more than a period (its worker
	// died, say) restarts the schedule from now: it resumes at its rate, with no burst to
	// catch up.
	next := workflow.Now(ctx)
	var ended time.Time
	for i := 0; i < n; i += per {
		now := workflow.Now(ctx)
		if ended.After(now) {
			now = ended
		}
		if d := next.Sub(now); d > 0 {
			if err := workflow.NewTimer(ctx, d).Get(ctx, nil); err != nil {
				p.Cancelled = true
				return p, nil
			}
		}
		if now := workflow.Now(ctx); now.Sub(next) > period {
			next = now
		}
		next = next.Add(period)
		batch := runs[i:min(i+per, n)]
		bctx := workflow.WithLocalActivityOptions(lctx, workflow.LocalActivityOptions{
			ScheduleToCloseTimeout: 24 * time.Hour, StartToCloseTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{MaximumInterval: 10 * time.Second},
			Summary:     fmt.Sprintf("replay runs %d-%d of %d", i+1, i+len(batch), n),
		})
		var res replayProgress
		if err := workflow.ExecuteLocalActivity(bctx, a.replayBatch, in.ID, born, batch).Get(bctx, &res); err != nil {
			if temporal.IsCanceledError(err) {
				p.Cancelled = true
				return p, nil
			}
			return p, err
		}
		ended = time.UnixMilli(res.Ended)
		p.Started += res.Started
		p.Skipped += res.Skipped
		for _, e := range res.Errors {
			if len(p.Errors) < maxReplayErrors {
				p.Errors = append(p.Errors, e)
			}
		}
	}
	return p, nil
}

// replayPace is a replay's batch size and the time between batches: rate runs per second
// on average, about one batch per second (fewer for rates under one).
func replayPace(rate float64) (int, time.Duration) {
	per := max(int(math.Round(rate)), 1)
	return per, time.Duration(float64(per) / rate * float64(time.Second))
}

// replayList lists the runs a replay replays, oldest first (a local activity of the replay
// workflow).
func (a *App) replayList(ctx context.Context, in replayInput) ([]string, error) {
	var cond *expr.Program
	if in.Request.If != "" {
		p, err := expr.CompileBool(in.Request.If)
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError("if: "+err.Error(), "InvalidIf", nil)
		}
		cond = p
	}
	type found struct {
		id string
		at time.Time
	}
	var runs []found
	var token []byte
	for {
		page, err := a.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: a.opts.Namespace, Query: replayQuery(in.Function, in.Request), NextPageToken: token, PageSize: 1000,
		})
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		for _, ex := range page.GetExecutions() {
			if cond != nil {
				ok, err := a.triggerMatches(ctx, cond, ex)
				if err != nil || !ok { // over the cost limit counts as no match
					continue
				}
			}
			runs = append(runs, found{ex.GetExecution().GetWorkflowId(), ex.GetStartTime().AsTime()})
		}
		if token = page.GetNextPageToken(); len(token) == 0 || len(runs) >= api.MaxReplayRuns {
			break
		}
	}
	sort.Slice(runs, func(i, j int) bool {
		if !runs[i].at.Equal(runs[j].at) {
			return runs[i].at.Before(runs[j].at)
		}
		return runs[i].id < runs[j].id
	})
	out := make([]string, 0, min(len(runs), api.MaxReplayRuns))
	for _, r := range runs[:min(len(runs), api.MaxReplayRuns)] {
		out = append(out, r.id)
	}
	return out, nil
}

// replayBatch starts the reruns of a batch of runs (a local activity of the replay
// workflow). It may run again for the same batch (a retry, or a worker that died before
// its result was recorded): a rerun that exists counts as started and is not started
// again, so no flow control decision is taken twice.
func (a *App) replayBatch(ctx context.Context, replayID string, born time.Time, runs []string) (replayProgress, error) {
	var (
		p  replayProgress
		mu sync.Mutex
	)
	g := fanOut()
	for _, orig := range runs {
		g.Go(func() error {
			runID := workflows.DeriveID(born, replayID, orig).String()
			_, err := a.temporal.DescribeWorkflowExecution(ctx, runID, "")
			var nf *serviceerror.NotFound
			if errors.As(err, &nf) {
				_, err = a.rerun(ctx, orig, runID, replayID, api.RerunRequest{})
			}
			var inErr *api.InputError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				p.Started++
			case errors.As(err, &inErr), errors.Is(err, ErrNotFound): // will never succeed: skip it
				p.Skipped++
				if len(p.Errors) < maxReplayErrors {
					p.Errors = append(p.Errors, orig+": "+err.Error())
				}
			default:
				return fmt.Errorf("replay run %s: %w", orig, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return replayProgress{}, err
	}
	p.Ended = time.Now().UnixMilli()
	return p, nil
}

// Replay reads a replay and its progress.
func (a *App) Replay(ctx context.Context, id string) (*api.Replay, error) {
	wid := a.replayWorkflowID(id)
	desc, err := a.temporal.DescribeWorkflowExecution(ctx, wid, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("replay %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("describe replay %s: %w", id, err)
	}
	start, err := a.startEvent(ctx, wid)
	if err != nil || len(start) == 0 {
		return nil, fmt.Errorf("replay %s: its start: %v", id, err)
	}
	var in replayInput
	if err := a.dc.FromPayloads(start[0].GetWorkflowExecutionStartedEventAttributes().GetInput(), &in); err != nil {
		return nil, fmt.Errorf("replay %s: %w", id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	r := in.Request
	out := &api.Replay{ID: id, Name: r.Name, AppID: r.AppID, FunctionID: r.FunctionID, From: *r.From, Until: *r.Until,
		Statuses: r.Statuses, If: r.If, Rate: r.Rate, Status: api.ReplayRunning, CreatedAt: info.GetStartTime().AsTime()}
	if info.GetCloseTime() != nil {
		t := info.GetCloseTime().AsTime()
		out.EndedAt = &t
	}
	var p replayProgress
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		v, err := a.temporal.QueryWorkflow(ctx, wid, "", "progress")
		if err != nil {
			return nil, fmt.Errorf("replay %s: query its progress (does a worker of app %s run?): %w", id, r.AppID, err)
		}
		if err := v.Get(&p); err != nil {
			return nil, err
		}
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		if err := a.temporal.GetWorkflow(ctx, wid, "").Get(ctx, &p); err != nil {
			return nil, fmt.Errorf("replay %s: %w", id, err)
		}
		out.Status = api.ReplayCompleted
		if p.Cancelled {
			out.Status = api.ReplayCancelled
		}
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		out.Status = api.ReplayCancelled
	default:
		out.Status = api.ReplayFailed
		if err := a.temporal.GetWorkflow(ctx, wid, "").Get(ctx, nil); err != nil {
			out.Error = err.Error()
		}
	}
	out.Matched, out.Started, out.Skipped, out.Errors = p.Matched, p.Started, p.Skipped, p.Errors
	out.Runs, err = a.replayRuns(ctx, id)
	return out, err
}

// replayRuns counts a replay's runs by status, as visibility has them.
func (a *App) replayRuns(ctx context.Context, id string) (api.ReplayRuns, error) {
	var out api.ReplayRuns
	res, err := a.temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: a.opts.Namespace, Query: fmt.Sprintf("%s = %s GROUP BY ExecutionStatus", SAReplayID.GetName(), quote(id)),
	})
	if err != nil {
		return out, fmt.Errorf("count the runs of replay %s: %w", id, err)
	}
	for _, g := range res.GetGroups() {
		var status string
		if vs := g.GetGroupValues(); len(vs) == 1 {
			_ = converter.GetDefaultDataConverter().FromPayload(vs[0], &status)
		}
		n := int(g.GetCount())
		switch status {
		case "Running":
			out.Running += n
		case "Completed":
			out.Completed += n
		case "Canceled":
			out.Cancelled += n
		default:
			out.Failed += n
		}
	}
	return out, nil
}

// CancelReplay stops a replay: it starts no more runs (those it started go on).
func (a *App) CancelReplay(ctx context.Context, id string) (*api.Replay, error) {
	r, err := a.Replay(ctx, id)
	if err != nil || r.Status != api.ReplayRunning {
		return r, err
	}
	if err := a.temporal.CancelWorkflow(ctx, a.replayWorkflowID(id), ""); err != nil {
		return nil, fmt.Errorf("cancel replay %s: %w", id, err)
	}
	// The replay ends at its next timer or batch; until then it shows RUNNING.
	return a.Replay(ctx, id)
}
