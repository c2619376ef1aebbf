package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/metrics"
)

// singletonKey evaluates the function's key for an event: ok false means the event is not
// subject to the rule (the key is false or does not evaluate).
func (f *function) singletonLock(ev *accepted) (key string, ok bool) {
	if f.singletonMode == "" {
		return "", false
	}
	value := ""
	if f.singletonKey != nil {
		v, err := f.singletonKey.Eval(map[string]any{"event": ev.asMap()})
		if err != nil || v == false || v == nil {
			return "", false
		}
		value = fmt.Sprint(v)
	}
	return flowcontrol.SingletonKey(f.slug, value), true
}

// admitSingleton decides whether runID may start under its function's singleton rule. It
// returns the lock key the run will hold ("" when the rule does not apply) and skip=true
// when the run must be recorded as skipped instead.
func (a *App) admitSingleton(ctx context.Context, f *function, runID string, ev *accepted) (key string, skip bool, err error) {
	key, ok := f.singletonLock(ev)
	if !ok {
		return "", false, nil
	}
	for range 3 { // a holder that ends while we look is retried
		outcome, holder, err := flowcontrol.AcquireSingleton(ctx, a.redis, key, runID, f.singletonMode)
		if err != nil {
			return "", false, err
		}
		switch outcome {
		case flowcontrol.Acquired:
			return key, false, nil
		case flowcontrol.TakenOver:
			if err := a.CancelRun(ctx, holder); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrRunFinished) {
				return "", false, err
			}
			a.metrics.FlowControl.WithLabelValues(f.slug, metrics.SingletonCancel).Inc()
			return key, false, nil
		}
		// Held: skip, unless the holder has ended without releasing (then take over).
		run, _, err := a.describe(ctx, holder)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return "", false, err
		}
		if err == nil && (run.Status == api.StatusRunning || run.Status == api.StatusScheduled) {
			a.metrics.FlowControl.WithLabelValues(f.slug, metrics.SingletonSkip).Inc()
			return "", true, a.recordSkipped(ctx, f, runID, ev, holder)
		}
		if stolen, err := flowcontrol.StealSingleton(ctx, a.redis, key, holder, runID); err != nil || stolen {
			return key, false, err
		}
	}
	return "", false, fmt.Errorf("singleton %s: the lock kept changing hands", key)
}

// skippedRun is the record of a run that never started.
type skippedRun struct {
	Run    api.FunctionRun `json:"run"`
	Reason string          `json:"reason"`
	Holder string          `json:"holder"`
}

func (a *App) recordSkipped(ctx context.Context, f *function, runID string, ev *accepted, holder string) error {
	now := time.Now().UTC()
	rec := skippedRun{Reason: "singleton", Holder: holder, Run: api.FunctionRun{
		RunID: runID, RunStartedAt: now, FunctionID: f.slug, EventID: ev.internal.String(), Status: api.StatusSkipped, EndedAt: &now,
	}}
	rec.Run.Output = skippedOutput(holder)
	b, _ := json.Marshal(rec)
	if err := a.redis.SetNX(ctx, flowcontrol.SkippedKey(runID), b, a.opts.EventRetention).Err(); err != nil {
		return err
	}
	// The Redis record serves REST; the workflow makes the run findable in the Web UI.
	return a.startSkippedRecord(ctx, f, runID, ev, holder)
}

// skippedOutput is a skipped run's REST output: why, and which run held the key.
func skippedOutput(holder string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"reason": "singleton", "run_id": holder})
	return b
}

func (a *App) skipped(ctx context.Context, runID string) (*api.FunctionRun, error) {
	b, err := a.redis.Get(ctx, flowcontrol.SkippedKey(runID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("run %s: %w", runID, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var rec skippedRun
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	return &rec.Run, nil
}
