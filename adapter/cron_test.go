package adapter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/internal/testenv"
)

func TestCronSchedules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	app := testenv.App(t, nil)
	ticks := make(chan adapter.Event, 4)
	handler := func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
		ticks <- in.Event
		return in.Event.Data["cron"], nil
	}
	mustCreate(t, app, "weekly", adapter.CronTrigger("0 9 * * MON"), handler)
	testenv.StartWorker(t, app)

	h := app.Schedule(ctx, "weekly", "0 9 * * MON")
	desc, err := h.Describe(ctx)
	if err != nil {
		t.Fatalf("no schedule for the cron trigger: %v", err)
	}
	if desc.Schedule.Policy.Overlap.String() != "AllowAll" {
		t.Errorf("overlap policy %v, want ALLOW_ALL", desc.Schedule.Policy.Overlap)
	}
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatal(err)
	}
	ev := recv(t, ticks)
	if ev.Name != "inngest/scheduled.timer" || ev.Data["cron"] != "0 9 * * MON" {
		t.Fatalf("tick event %+v", ev)
	}
	scheduled, err := time.Parse(time.RFC3339, ev.ID)
	if err != nil || time.Since(scheduled) > time.Minute || ev.Data["scheduledAt"] != ev.ID || ev.Data["fireAt"] == nil {
		t.Fatalf("tick id %q / data %v", ev.ID, ev.Data)
	}

	// The same app restarted with another cron: the old schedule goes, the new one comes.
	next := testenv.App(t, func(o *adapter.Options) { o.AppID = app.AppID(); o.TaskQueue = app.Options().TaskQueue })
	mustCreate(t, next, "weekly", adapter.CronTrigger("TZ=Europe/Paris 0 9 * * *"), handler)
	if err := next.SyncSchedules(ctx); err != nil {
		t.Fatal(err)
	}
	var nf *serviceerror.NotFound
	if _, err := h.Describe(ctx); !errors.As(err, &nf) {
		t.Fatalf("the old schedule still exists: %v", err)
	}
	if _, err := next.Schedule(ctx, "weekly", "TZ=Europe/Paris 0 9 * * *").Describe(ctx); err != nil {
		t.Fatalf("the new schedule: %v", err)
	}
	// Without cron triggers, nothing is left behind.
	last := testenv.App(t, func(o *adapter.Options) { o.AppID = app.AppID() })
	mustCreate(t, last, "weekly", adapter.EventTrigger("x/y", nil), handler)
	if err := last.SyncSchedules(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := next.Schedule(ctx, "weekly", "TZ=Europe/Paris 0 9 * * *").Describe(ctx); !errors.As(err, &nf) {
		t.Fatalf("the removed cron's schedule still exists: %v", err)
	}
}

func TestCronValidation(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	for expr, msg := range map[string]string{
		"61 * * * *":                "cron",
		"@hourly":                   "five fields",
		"* * * *":                   "five fields",
		"TZ=Mars/Olympus * * * * *": "cron",
	} {
		rejects(t, app, adapter.FunctionOpts{ID: "c"}, adapter.CronTrigger(expr), msg)
	}
	rejects(t, app, adapter.FunctionOpts{ID: "c"}, adapter.MultipleTriggers{adapter.CronTrigger("* * * * *"), adapter.CronTrigger("* * * * *")}, "listed twice")
}
