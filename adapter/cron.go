package adapter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/workflows"
)

// EventScheduledTimer names the event of a cron tick.
const EventScheduledTimer = "inngest/scheduled.timer"

// cronWorkflow is the workflow type a schedule starts on every tick.
const cronWorkflow = "tempest.cron"

// CronTrigger runs the function on a schedule: five fields (minute hour day-of-month month
// day-of-week), optionally prefixed by "TZ=Area/City " (default UTC). Each tick is a Temporal
// Schedule action that starts one run with an inngest/scheduled.timer event; a slow run
// never makes the next tick skip (overlap policy ALLOW_ALL).
func CronTrigger(expr string) Trigger { return Trigger{Cron: expr} }

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

func validateCron(expr string) error {
	if len(expr) > MaxEventNameLength {
		return fmt.Errorf("cron %q is longer than %d characters", expr, MaxEventNameLength)
	}
	if _, err := cronParser.Parse(expr); err != nil {
		return fmt.Errorf("cron %q: %v (use five fields, optionally after TZ=Area/City)", expr, err)
	}
	return nil
}

// cronTick is the input of a tick workflow.
type cronTick struct {
	FunctionID string `json:"function_id"`
	Cron       string `json:"cron"`
}

var scheduledStart = temporal.NewSearchAttributeKeyTime("TemporalScheduledStartTime")

// cronTickWorkflow turns one schedule action into one run of the function.
func (a *App) cronTickWorkflow(ctx workflow.Context, t cronTick) (string, error) {
	scheduled, ok := workflow.GetTypedSearchAttributes(ctx).GetTime(scheduledStart)
	if !ok {
		scheduled = workflow.GetInfo(ctx).WorkflowStartTime
	}
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: time.Hour, StartToCloseTimeout: time.Minute, Summary: "start " + t.FunctionID,
	})
	var runID string
	err := workflow.ExecuteLocalActivity(ctx, cronActivities{a}.StartScheduled, t, scheduled.UTC(), workflow.Now(ctx).UTC()).Get(ctx, &runID)
	return runID, err
}

// cronActivities holds the tick workflow's local activity; its method's name is the one
// recorded in tick histories ("StartScheduled").
type cronActivities struct{ a *App }

// StartScheduled starts the run of a cron tick. The event's id is the scheduled time, and
// the run id derives from it, so a retried tick starts one run.
func (c cronActivities) StartScheduled(ctx context.Context, t cronTick, scheduledAt, fireAt time.Time) (string, error) {
	a := c.a
	a.mu.RLock()
	f, ok := a.functions[t.FunctionID]
	a.mu.RUnlock()
	if !ok { // an SDK app's function, from the registry
		f, ok = a.routed(t.FunctionID)
	}
	if !ok {
		return "", temporal.NewNonRetryableApplicationError("function "+t.FunctionID+" is no longer registered", "NotFound", nil)
	}
	data, _ := json.Marshal(map[string]string{
		"cron": t.Cron, "scheduledAt": scheduledAt.Format(time.RFC3339), "fireAt": fireAt.Format(time.RFC3339),
	})
	ev := &accepted{received: time.Now(), ev: inbound{
		ID: scheduledAt.Format(time.RFC3339), Name: EventScheduledTimer, Data: data, User: json.RawMessage("{}"), TS: fireAt.UnixMilli(),
	}}
	ev.internal = workflows.DeriveID(scheduledAt, f.slug, t.Cron, EventScheduledTimer)
	if err := ev.normalize(true); err != nil {
		return "", err
	}
	if a.routes.Load().isPaused(f.slug) { // a paused function's ticks start nothing
		return "", nil
	}
	// A tick starts its function's run directly (no event trigger routes it), then lists
	// its event in the log as dispatched; a retried tick does both again, idempotently.
	runID := runIDFor(f, ev)
	listed, err := a.startOne(ctx, f, ev)
	if err != nil {
		return "", err
	}
	return runID, a.logDispatched(ctx, ev, listed)
}

// scheduleID names the schedule of one cron trigger of a function. Schedules are the
// namespace's: scope keeps apart SDK apps of the same id synced in several environments
// ("sdk:<env>"); Go apps' schedules keep their unscoped ids ("").
func scheduleID(scope, slug, expr string) string {
	h := sha256.Sum256([]byte(expr))
	if scope != "" {
		slug = scope + ":" + slug
	}
	return "tempest-cron:" + slug + ":" + hex.EncodeToString(h[:6])
}

// SyncSchedules makes the namespace's schedules match the app's cron triggers: it creates
// the missing ones and deletes those of cron triggers that were removed or changed. The
// app's schedule ids are kept in Redis, so a schedule is found without waiting for
// Temporal's visibility.
func (a *App) SyncSchedules(ctx context.Context) error {
	a.mu.RLock()
	fns := make([]*function, 0, len(a.functions))
	for _, f := range a.functions {
		fns = append(fns, f)
	}
	a.mu.RUnlock()
	return a.syncSchedules(ctx, "", a.opts.AppID, a.opts.TaskQueue, fns)
}

// sdkScope is the schedule scope of the environment's SDK apps.
func (a *App) sdkScope() string { return "sdk:" + a.opts.Environment }

// syncSchedules makes app appID's schedules those of the cron triggers of fns, ticking on
// taskQueue (this app's, or the SDK apps' queue).
func (a *App) syncSchedules(ctx context.Context, scope, appID, taskQueue string, fns []*function) error {
	want := map[string]cronTick{}
	for _, f := range fns {
		for _, c := range f.crons {
			want[scheduleID(scope, f.slug, c)] = cronTick{FunctionID: f.slug, Cron: c}
		}
	}
	set := flowcontrol.CronSetKey(appID)
	if scope != "" {
		set = flowcontrol.CronSetKey(scope + ":" + appID)
	}
	sc := a.temporal.ScheduleClient()
	for id, tick := range want {
		if err := a.redis.SAdd(ctx, set, id).Err(); err != nil {
			return err
		}
		_, err := sc.Create(ctx, client.ScheduleOptions{
			ID:      id,
			Spec:    client.ScheduleSpec{CronExpressions: []string{tick.Cron}},
			Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL,
			Memo:    map[string]any{"app": appID, "function": tick.FunctionID, "cron": tick.Cron},
			Action: &client.ScheduleWorkflowAction{
				ID:        "tempest-cron-tick:" + tick.FunctionID,
				Workflow:  cronWorkflow,
				Args:      []any{tick},
				TaskQueue: taskQueue,
			},
		})
		if err != nil && !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
			return fmt.Errorf("create schedule %s (%s): %w", id, tick.Cron, err)
		}
	}
	have, err := a.redis.SMembers(ctx, set).Result()
	if err != nil {
		return err
	}
	for _, id := range have {
		if _, ok := want[id]; ok {
			continue
		}
		var nf *serviceerror.NotFound
		if err := sc.GetHandle(ctx, id).Delete(ctx); err != nil && !errors.As(err, &nf) {
			return fmt.Errorf("delete schedule %s: %w", id, err)
		}
		if err := a.redis.SRem(ctx, set, id).Err(); err != nil {
			return err
		}
	}
	return nil
}

// Schedule returns the handle of the schedule of a function's cron trigger.
func (a *App) Schedule(ctx context.Context, functionID, expr string) client.ScheduleHandle {
	slug, scope := functionID, ""
	if f, ok := a.resolve(functionID); ok {
		slug = f.Slug
	}
	if f, ok := a.routed(slug); ok && f.url != "" {
		scope = a.sdkScope()
	}
	return a.temporal.ScheduleClient().GetHandle(ctx, scheduleID(scope, slug, expr))
}
