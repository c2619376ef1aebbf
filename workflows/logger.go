package workflows

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"
)

type stepInfoKey struct{}

// Logger is the logger of code that runs in a run: in a step's body, the step's (its
// attempt's lines are written once per attempt); in the handler, the workflow's, which is
// silent while the run replays, so a line is written once however often the code runs
// again. Both go to the app's logger with the run, function and event ids (and the step's
// id in a step); outside a run it is slog.Default().
func Logger(ctx context.Context) *slog.Logger {
	if attrs, ok := ctx.Value(stepInfoKey{}).([]any); ok && activity.IsActivity(ctx) {
		return slog.New(bridge{l: activity.GetLogger(ctx)}).With(attrs...)
	}
	if st, err := stateFrom(ctx); err == nil {
		return slog.New(bridge{l: workflow.GetLogger(st.wctx)}).With(st.logAttrs()...)
	}
	return slog.Default()
}

// MemoTraceID is the memo field of a run's OpenTelemetry trace id (set at its start when
// tracing is on).
const MemoTraceID = "tempest.trace_id"

// logAttrs are the run's ids for its log lines, read once per run (the trace id from its
// memo); callers must not append to them in place.
func (st *runState) logAttrs() []any {
	if st.attrs == nil {
		st.attrs = []any{"run_id", st.in.RunID, "function", st.in.FunctionID, "event_id", st.in.EventID}
		if p := workflow.GetInfo(st.wctx).Memo.GetFields()[MemoTraceID]; p != nil {
			var id string
			if converter.GetDefaultDataConverter().FromPayload(p, &id) == nil && id != "" {
				st.attrs = append(st.attrs, "trace_id", id)
			}
		}
	}
	return st.attrs
}

// withStepInfo gives a step body's ctx what Logger needs.
func (st *runState) withStepInfo(id string, fn StepFunc) StepFunc {
	attrs := append(slices.Clip(st.logAttrs()), "step", id)
	return func(ctx context.Context) (json.RawMessage, error) {
		return fn(context.WithValue(ctx, stepInfoKey{}, attrs))
	}
}

// bridge is a slog.Handler onto a Temporal SDK logger (which ends in the app's slog
// logger, and for a workflow's knows when it replays).
type bridge struct {
	l      sdklog.Logger
	attrs  []any
	prefix string
}

func (b bridge) Enabled(context.Context, slog.Level) bool { return true }

func (b bridge) Handle(_ context.Context, r slog.Record) error {
	kv := append([]any(nil), b.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		kv = append(kv, b.prefix+a.Key, a.Value.Any())
		return true
	})
	switch {
	case r.Level >= slog.LevelError:
		b.l.Error(r.Message, kv...)
	case r.Level >= slog.LevelWarn:
		b.l.Warn(r.Message, kv...)
	case r.Level >= slog.LevelInfo:
		b.l.Info(r.Message, kv...)
	default:
		b.l.Debug(r.Message, kv...)
	}
	return nil
}

func (b bridge) WithAttrs(as []slog.Attr) slog.Handler {
	kv := append([]any(nil), b.attrs...)
	for _, a := range as {
		kv = append(kv, b.prefix+a.Key, a.Value.Any())
	}
	b.attrs = kv
	return b
}

func (b bridge) WithGroup(name string) slog.Handler {
	b.prefix += name + "."
	return b
}
