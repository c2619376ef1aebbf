package adapter_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/internal/testenv"
)

// step.Logger's lines carry the run, function and event ids (and the step's id in a step),
// each written once.
func TestStepLogger(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	app := testenv.App(t, func(o *adapter.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	mustCreate(t, app, "logs", adapter.EventTrigger(app.AppID()+"/log", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			step.Logger(ctx).Info("handler began", "n", 1)
			return step.Run(ctx, "charge", func(ctx context.Context) (int, error) {
				step.Logger(ctx).Info("charging", "amount", 10)
				return 10, nil
			})
		})
	testenv.StartWorker(t, app)
	ev := send(t, app, map[string]any{"name": app.AppID() + "/log"})[0]
	run := runsOf(t, app, ev)[0].RunID
	waitRun(t, app, run)

	lines := map[string][]map[string]any{}
	for _, l := range strings.Split(buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			msg, _ := m["msg"].(string)
			lines[msg] = append(lines[msg], m)
		}
	}
	for msg, want := range map[string]map[string]any{
		"handler began": {"run_id": run, "function": app.AppID() + "-logs", "event_id": ev, "n": float64(1)},
		"charging":      {"run_id": run, "function": app.AppID() + "-logs", "event_id": ev, "step": "charge", "amount": float64(10)},
	} {
		if len(lines[msg]) != 1 {
			t.Fatalf("%d lines %q, want 1:\n%s", len(lines[msg]), msg, buf.String())
		}
		for k, v := range want {
			if lines[msg][0][k] != v {
				t.Errorf("line %q: %s = %v, want %v", msg, k, lines[msg][0][k], v)
			}
		}
	}
}
