package tempesttest

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/internal/kit"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/expr"
	"github.com/tempestrun/tempest/workflows"
)

// The rest of workflows.Engine: sent events are recorded, waits fed from the case, and
// flow control lets everything through.

func (r *recorder) SendEvents(_ context.Context, events []json.RawMessage, ids []ulid.ULID, internal bool) ([]string, error) {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	if internal { // the run's own inngest/function.finished etc.
		return out, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, raw := range events {
		var ev adapter.Event
		_ = json.Unmarshal(raw, &ev)
		r.res.Sent = append(r.res.Sent, ev)
	}
	return out, nil
}

func (r *recorder) RegisterWaits(_ context.Context, waits []flowcontrol.Wait) error {
	for _, w := range waits {
		if w.Kind != flowcontrol.KindWait {
			continue // cancelOn rules never fire here
		}
		id := strings.TrimPrefix(w.ID, RunID+"/")
		r.mu.Lock()
		s := r.step(id, "wait")
		s.Attempts = append(s.Attempts, Attempt{Output: json.RawMessage("null"), At: r.env.Now()})
		ev, fed := r.c.Waits[id]
		var raw json.RawMessage
		if fed && r.matches(w, ev) {
			raw, _ = json.Marshal(ev)
			s.Attempts[len(s.Attempts)-1].Output = raw
			s.Attempts[len(s.Attempts)-1].Answered = true
		}
		r.mu.Unlock()
		if raw != nil {
			r.env.SignalWorkflow(w.Signal, raw)
		}
	}
	return nil
}

// matches applies the wait's name, Match and If to a fed event, as delivery does.
func (r *recorder) matches(w flowcontrol.Wait, ev adapter.Event) bool {
	if ev.Name != w.Event {
		return false
	}
	if ev.Data == nil {
		ev.Data = map[string]any{}
	}
	b, _ := json.Marshal(ev)
	var async, trigger map[string]any
	_ = json.Unmarshal(b, &async)
	_ = json.Unmarshal(r.trigger, &trigger)
	if w.MatchPath != "" {
		got, ok := flowcontrol.Lookup(async, w.MatchPath)
		want, _ := flowcontrol.ValueKey(w.MatchValue)
		gotKey, _ := flowcontrol.ValueKey(got)
		if !ok || gotKey != want {
			return false
		}
	}
	if w.If != "" {
		p, err := expr.CompileBool(w.If)
		if err != nil || !p.Match(map[string]any{"event": trigger, "async": async}) {
			return false
		}
	}
	return true
}

// ClaimWait: the run's own claims (a timeout, releasing cancel rules) always win here.
func (r *recorder) ClaimWait(context.Context, flowcontrol.Wait, string) (int, string, error) {
	return flowcontrol.Claimed, "", nil
}

func (r *recorder) ReleaseSingleton(context.Context, string, string) error { return nil }
func (r *recorder) CancelRequested(context.Context, string) bool           { return false }
func (r *recorder) AcquireLeases(context.Context, string, []flowcontrol.Lease, string, string, float64, time.Duration) (bool, error) {
	return true, nil
}
func (r *recorder) ReleaseLeases(context.Context, string, []flowcontrol.Lease, string) error {
	return nil
}
func (r *recorder) PassGate(context.Context, flowcontrol.Gate, string) (time.Duration, error) {
	return 0, nil
}

// Function resolves invoke targets: those the case answers.
func (r *recorder) Function(id string) (workflows.FunctionInfo, bool) {
	if _, ok := r.c.Invokes[id]; !ok {
		return workflows.FunctionInfo{}, false
	}
	slug := id
	if f, ok := kit.Lookup(r.fns, id); ok {
		slug = f.Slug
	}
	return workflows.FunctionInfo{Slug: slug, TaskQueue: "default-test-taskqueue"}, true
}

// sleeps records step.Sleep from its timer (the only trace a sleep leaves).
type sleeps struct {
	interceptor.WorkerInterceptorBase
	r *recorder
}

func (s *sleeps) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &sleepsIn{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, r: s.r}
}

type sleepsIn struct {
	interceptor.WorkflowInboundInterceptorBase
	r *recorder
}

func (s *sleepsIn) Init(out interceptor.WorkflowOutboundInterceptor) error {
	return s.Next.Init(&sleepsOut{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: out}, r: s.r})
}

type sleepsOut struct {
	interceptor.WorkflowOutboundInterceptorBase
	r *recorder
}

func (s *sleepsOut) NewTimerWithOptions(ctx workflow.Context, d time.Duration, opts workflow.TimerOptions) workflow.Future {
	// Sleeps' timers are summarized "sleep <id> (<duration>)".
	if rest, ok := strings.CutPrefix(opts.Summary, "sleep "); ok && workflow.GetInfo(ctx).WorkflowType.Name == s.r.slug {
		if i := strings.LastIndex(rest, " ("); i > 0 && !workflow.IsReplaying(ctx) {
			s.r.mu.Lock()
			st := s.r.step(rest[:i], "sleep")
			st.Attempts = append(st.Attempts, Attempt{Output: json.RawMessage("null"), At: workflow.Now(ctx)})
			s.r.mu.Unlock()
		}
	}
	return s.Next.NewTimerWithOptions(ctx, d, opts)
}
