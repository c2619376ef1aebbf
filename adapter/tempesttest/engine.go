package tempesttest

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/activities"
	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/internal/bridge"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/expr"
)

// activities are the test run's: events sent and invoke targets answered by the recorder,
// waits fed from the case (RegisterWaits and ClaimWait are mocked), and a Redis client that
// reaches no server (a step's cancel check finds none).
func (r *recorder) activities() *activities.Activities {
	noRedis := redis.NewClient(&redis.Options{
		Dialer:     func(context.Context, string, string) (net.Conn, error) { return nil, errNoRedis },
		Limiter:    refuseAll{}, // fail every command before it dials
		MaxRetries: -1,
	})
	return &activities.Activities{Redis: noRedis, Send: r.send, Resolve: r.resolve}
}

var errNoRedis = errors.New("tempesttest: no Redis in a test run")

type refuseAll struct{}

func (refuseAll) Allow() error       { return errNoRedis }
func (refuseAll) ReportResult(error) {}

func (r *recorder) send(_ context.Context, events []json.RawMessage, ids []ulid.ULID, internal bool) ([]string, error) {
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

// registerWaits stands in for Activities.RegisterWaits: a wait the case feeds gets its
// event at once.
func (r *recorder) registerWaits(_ context.Context, waits []flowcontrol.Wait) error {
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

// claimWait stands in for Activities.ClaimWait: the run's own claims (a timeout, releasing
// cancel rules) always win here.
func (r *recorder) claimWait(_ context.Context, waits []flowcontrol.Wait, _ string) ([]activities.ClaimResult, error) {
	out := make([]activities.ClaimResult, len(waits))
	for i := range out {
		out[i].Outcome = flowcontrol.Claimed
	}
	return out, nil
}

// resolve finds invoke targets: those the case answers.
func (r *recorder) resolve(id string) (activities.FunctionInfo, bool) {
	if _, ok := r.c.Invokes[id]; !ok {
		return activities.FunctionInfo{}, false
	}
	return activities.FunctionInfo{Slug: r.slugOf(id), TaskQueue: "default-test-taskqueue"}, true
}

// slugOf is the workflow name of an invoke target: a defined function's fully qualified
// id, or the id as the code gave it.
func (r *recorder) slugOf(id string) string {
	if f, ok := bridge.Lookup(r.fns, id); ok {
		return f.Slug
	}
	return id
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
