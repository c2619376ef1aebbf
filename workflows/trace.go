package workflows

import (
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/tempestrun/tempest/activities"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/sdkhttp"
)

// Trace reads a run's step timeline from its history: the steps in the order the run first
// reached them, each with its attempts, outcome and (withOutput) results. It knows how this
// package records steps: RunStep markers, the summaries of timers and waits, the signals of
// waits and the children of invokes. dc decodes the payloads (the client's converter, so
// results kept in Redis are read back).
func Trace(events []*historypb.HistoryEvent, dc converter.DataConverter, withOutput bool) []api.TraceStep {
	t := &tracer{dc: dc, fc: temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{DataConverter: dc}),
		withOutput: withOutput, byID: map[string]int{}, timers: map[string]timerRef{}, children: map[int64]int{}}
	for _, ev := range events {
		t.event(ev)
	}
	return t.finish()
}

type tracer struct {
	dc         converter.DataConverter
	fc         converter.FailureConverter
	withOutput bool

	in       RunInput
	closed   bool // the run has ended
	steps    []api.TraceStep
	byID     map[string]int // step id (and kind) -> index in steps
	timers   map[string]timerRef
	children map[int64]int // initiated event id -> invoke step
}

type timerRef struct {
	step int
	kind string // "sleep", "body" (a function body retry) or "invoke" (its timeout)
}

var attemptSummary = regexp.MustCompile(`^(.*) \(attempt (\d+)\)$`)

func (t *tracer) step(kind, id string, at time.Time) int {
	key := kind + "\x00" + id
	if i, ok := t.byID[key]; ok {
		return i
	}
	t.steps = append(t.steps, api.TraceStep{ID: id, Kind: kind, Status: api.StepRunning, StartedAt: at})
	t.byID[key] = len(t.steps) - 1
	return len(t.steps) - 1
}

func (t *tracer) lookup(kind, id string) (int, bool) {
	i, ok := t.byID[kind+"\x00"+id]
	return i, ok
}

func (t *tracer) output(p *commonpb.Payloads) json.RawMessage {
	if !t.withOutput || p == nil {
		return nil
	}
	var out json.RawMessage
	if t.dc.FromPayloads(p, &out) != nil {
		return nil
	}
	return out
}

func (t *tracer) summary(ev *historypb.HistoryEvent) string {
	var s string
	if p := ev.GetUserMetadata().GetSummary(); p != nil {
		_ = t.dc.FromPayload(p, &s)
	}
	return s
}

func (t *tracer) event(ev *historypb.HistoryEvent) {
	at := ev.GetEventTime().AsTime()
	switch ev.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
		if p := ev.GetWorkflowExecutionStartedEventAttributes().GetInput(); p != nil {
			_ = t.dc.FromPayloads(p, &t.in)
		}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
		t.closed = true
	case enumspb.EVENT_TYPE_MARKER_RECORDED:
		t.marker(ev, at)
	case enumspb.EVENT_TYPE_TIMER_STARTED:
		t.timerStarted(ev, at)
	case enumspb.EVENT_TYPE_TIMER_FIRED:
		t.timerEnded(ev.GetTimerFiredEventAttributes().GetTimerId(), at, true)
	case enumspb.EVENT_TYPE_TIMER_CANCELED:
		t.timerEnded(ev.GetTimerCanceledEventAttributes().GetTimerId(), at, false)
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		a := ev.GetWorkflowExecutionSignaledEventAttributes()
		if uid, ok := strings.CutPrefix(a.GetSignalName(), waitSignalPrefix); ok {
			i := t.step(api.StepWait, uid, at)
			s := &t.steps[i]
			s.Status, s.EndedAt, s.Output = api.StepCompleted, &at, t.output(a.GetInput())
		}
	case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
		a := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes()
		var in RunInput
		if a.GetInput() == nil || t.dc.FromPayloads(a.GetInput(), &in) != nil {
			return
		}
		uid := strings.TrimPrefix(in.CorrelationID, t.in.RunID+".")
		i := t.step(api.StepInvoke, uid, at)
		t.steps[i].FunctionID, t.steps[i].RunID = a.GetWorkflowType().GetName(), a.GetWorkflowId()
		t.children[ev.GetEventId()] = i
	case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
		a := ev.GetStartChildWorkflowExecutionFailedEventAttributes()
		t.childEnded(a.GetInitiatedEventId(), at, nil, &api.StepErrorInfo{Name: "InvokeError", Message: "the invoked run could not start: " + a.GetCause().String()})
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
		a := ev.GetChildWorkflowExecutionCompletedEventAttributes()
		t.childEnded(a.GetInitiatedEventId(), at, a.GetResult(), nil)
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
		a := ev.GetChildWorkflowExecutionFailedEventAttributes()
		t.childEnded(a.GetInitiatedEventId(), at, nil, t.errorInfo(t.fc.FailureToError(a.GetFailure())))
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED:
		t.childEnded(ev.GetChildWorkflowExecutionCanceledEventAttributes().GetInitiatedEventId(), at, nil,
			&api.StepErrorInfo{Name: "Cancelled", Message: "the invoked run was cancelled"})
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED:
		t.childEnded(ev.GetChildWorkflowExecutionTerminatedEventAttributes().GetInitiatedEventId(), at, nil,
			&api.StepErrorInfo{Name: "Terminated", Message: "the invoked run was terminated"})
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT:
		t.childEnded(ev.GetChildWorkflowExecutionTimedOutEventAttributes().GetInitiatedEventId(), at, nil,
			&api.StepErrorInfo{Name: "TimedOut", Message: "the invoked run timed out"})
	}
}

func (t *tracer) childEnded(initiated int64, at time.Time, result *commonpb.Payloads, e *api.StepErrorInfo) {
	i, ok := t.children[initiated]
	if !ok || t.steps[i].Status != api.StepRunning { // an invoke timeout ended it first
		return
	}
	s := &t.steps[i]
	s.EndedAt = &at
	if e != nil {
		s.Status, s.Error = api.StepFailed, e
		return
	}
	s.Status, s.Output = api.StepCompleted, t.output(result)
}

// errorInfo is an error as a step shows it: an application error's type and message.
func (t *tracer) errorInfo(err error) *api.StepErrorInfo {
	if err == nil {
		return nil
	}
	name, msg := Failure(err)
	return &api.StepErrorInfo{Name: name, Message: msg}
}

func (t *tracer) marker(ev *historypb.HistoryEvent, at time.Time) {
	a := ev.GetMarkerRecordedEventAttributes()
	if a.GetMarkerName() != "LocalActivity" {
		return
	}
	var data struct{ ActivityType string }
	if p := a.GetDetails()["data"]; p == nil || t.dc.FromPayloads(p, &data) != nil {
		return
	}
	summary := t.summary(ev)
	switch data.ActivityType {
	case "RunStep":
		t.attempt(a, summary, at)
	case "RegisterWaits":
		// "wait for <event> (<step id>)"; the cancelOn rules register under another summary.
		rest, ok := strings.CutPrefix(summary, "wait for ")
		if k := strings.LastIndex(rest, " ("); ok && k >= 0 && strings.HasSuffix(rest, ")") {
			i := t.step(api.StepWait, rest[k+2:len(rest)-1], at)
			t.steps[i].Event = rest[:k]
		}
	case "ClaimWait":
		// "wait for <event> timed out (<step id>)": the claim decides a timeout's race.
		rest, ok := strings.CutPrefix(summary, "wait for ")
		k := strings.LastIndex(rest, " timed out (")
		if !ok || k < 0 || !strings.HasSuffix(rest, ")") {
			return
		}
		i, ok := t.lookup(api.StepWait, rest[k+len(" timed out ("):len(rest)-1])
		if !ok {
			return
		}
		s := &t.steps[i]
		s.Status, s.EndedAt, s.Output = api.StepTimedOut, &at, nil
		var res []activities.ClaimResult
		if p := a.GetDetails()["result"]; p != nil && t.dc.FromPayloads(p, &res) == nil && len(res) == 1 &&
			res[0].Outcome == flowcontrol.AlreadyClaimed && res[0].Prev != "~timeout" {
			s.Status = api.StepCompleted
			if t.withOutput {
				s.Output = json.RawMessage(res[0].Prev)
			}
		}
	}
}

// attempt records one attempt of a step.run from its RunStep marker.
func (t *tracer) attempt(a *historypb.MarkerRecordedEventAttributes, summary string, at time.Time) {
	if f := a.GetFailure(); f != nil {
		err := t.fc.FailureToError(f)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) {
			return
		}
		switch appErr.Type() {
		case concurrencyLimitedType, runCancelledType: // a wait for a slot, or never started
			return
		}
		info := attemptInfo{ID: summary, Started: at.UnixMilli(), Ended: at.UnixMilli()}
		if !appErr.HasDetails() || appErr.Details(&info) != nil {
			// Recorded before attempts carried their info: the summary names them.
			if m := attemptSummary.FindStringSubmatch(summary); m != nil {
				info.ID = m[1]
				n, _ := strconv.Atoi(m[2])
				info.Attempt = n - 1
			}
		}
		i := t.step(api.StepRun, info.ID, time.UnixMilli(info.Started).UTC())
		e := &api.StepErrorInfo{Name: appErr.Type(), Message: appErr.Message()}
		s := &t.steps[i]
		s.Attempts = append(s.Attempts, api.TraceAttempt{Attempt: info.Attempt, Status: api.StepFailed,
			StartedAt: time.UnixMilli(info.Started).UTC(), EndedAt: time.UnixMilli(info.Ended).UTC(), Error: e})
		s.Error = e
		if appErr.NonRetryable() || info.Attempt >= t.in.Retries {
			s.Status, s.EndedAt = api.StepFailed, ptrTime(time.UnixMilli(info.Ended).UTC())
		}
		return
	}
	var out StepOutput
	if p := a.GetDetails()["result"]; p == nil || t.dc.FromPayloads(p, &out) != nil {
		return
	}
	started, ended := at, at
	if out.Started > 0 {
		started = time.UnixMilli(out.Started).UTC()
	}
	if out.Ended > 0 {
		ended = time.UnixMilli(out.Ended).UTC()
	}
	if strings.HasPrefix(out.ID, callPrefix) {
		// A call to an SDK app: the steps it ran are what the trace shows (the call itself
		// only when it had failed attempts).
		if i, ok := t.lookup(api.StepRun, out.ID); ok {
			s := &t.steps[i]
			s.Attempts = append(s.Attempts, api.TraceAttempt{Attempt: len(s.Attempts), Status: api.StepCompleted, StartedAt: started, EndedAt: ended})
			s.Status, s.EndedAt, s.Error = api.StepCompleted, &ended, nil
		}
		t.appSteps(out.Data, started, ended)
		return
	}
	i := t.step(api.StepRun, out.ID, started)
	s := &t.steps[i]
	att := api.TraceAttempt{Attempt: len(s.Attempts), Status: api.StepCompleted, StartedAt: started, EndedAt: ended}
	if t.withOutput {
		att.Output, s.Output = out.Data, out.Data
	}
	s.Attempts = append(s.Attempts, att)
	s.Status, s.EndedAt, s.Error = api.StepCompleted, &ended, nil
}

func ptrTime(t time.Time) *time.Time { return &t }

// appSteps lists the steps an SDK app reported in one call, by the names the user gave them,
// timed as the app reported (else as the call).
func (t *tracer) appSteps(data json.RawMessage, callStart, callEnd time.Time) {
	var out activities.CallOutcome
	if json.Unmarshal(data, &out) != nil {
		return
	}
	for _, op := range out.Ops {
		if _, ok := op.Memo(); !ok {
			continue
		}
		started, ended := callStart, callEnd
		if op.Timing != nil && op.Timing.A > 0 {
			started = time.Unix(0, op.Timing.A).UTC()
			ended = started.Add(time.Duration(op.Timing.B))
		}
		i := t.step(api.StepRun, op.Label(), started)
		s := &t.steps[i]
		att := api.TraceAttempt{Attempt: len(s.Attempts), Status: api.StepCompleted, StartedAt: started, EndedAt: ended}
		if op.Op == sdkhttp.OpStepFailed {
			e := sdkhttp.ParseError(op.Error)
			att.Status, att.Error = api.StepFailed, &api.StepErrorInfo{Name: e.Name, Message: e.Message}
			s.Error = att.Error
		} else if t.withOutput {
			att.Output, s.Output = op.Data, op.Data
		}
		s.Attempts = append(s.Attempts, att)
		s.Status, s.EndedAt = att.Status, &ended
	}
}

func (t *tracer) timerStarted(ev *historypb.HistoryEvent, at time.Time) {
	a := ev.GetTimerStartedEventAttributes()
	d := a.GetStartToFireTimeout().AsDuration()
	due := at.Add(d)
	s := t.summary(ev)
	switch {
	case strings.HasPrefix(s, "sleep ") && strings.LastIndex(s, " (") > len("sleep "):
		i := t.step(api.StepSleep, s[len("sleep "):strings.LastIndex(s, " (")], at)
		t.steps[i].Until = &due
		t.timers[a.GetTimerId()] = timerRef{step: i, kind: "sleep"}
	case strings.HasPrefix(s, "retry function body ("):
		// "retry function body (attempt N failed: <error>)"
		t.steps = append(t.steps, api.TraceStep{Kind: api.StepRetry, Status: api.StepRunning, StartedAt: at, Until: &due})
		i := len(t.steps) - 1
		if msg, ok := strings.CutSuffix(s[len("retry function body ("):], ")"); ok {
			if _, m, ok := strings.Cut(msg, " failed: "); ok {
				t.steps[i].Error = &api.StepErrorInfo{Name: "Error", Message: m}
			}
		}
		t.timers[a.GetTimerId()] = timerRef{step: i, kind: "body"}
	case strings.HasPrefix(s, "retry ") && strings.LastIndex(s, " in ") > len("retry "):
		if i, ok := t.lookup(api.StepRun, s[len("retry "):strings.LastIndex(s, " in ")]); ok && len(t.steps[i].Attempts) > 0 {
			t.steps[i].Attempts[len(t.steps[i].Attempts)-1].RetryAt = &due
		}
	case strings.HasPrefix(s, "wait for ") && strings.HasSuffix(s, ")") && strings.LastIndex(s, " timeout (") > 0:
		if i, ok := t.lookup(api.StepWait, s[strings.LastIndex(s, " timeout (")+len(" timeout ("):len(s)-1]); ok {
			t.steps[i].Timeout = d.String()
		}
	case strings.HasPrefix(s, "invoke ") && strings.HasSuffix(s, " timeout"):
		if i, ok := t.lookup(api.StepInvoke, strings.TrimSuffix(strings.TrimPrefix(s, "invoke "), " timeout")); ok {
			t.steps[i].Timeout = d.String()
			t.timers[a.GetTimerId()] = timerRef{step: i, kind: "invoke"}
		}
	}
}

func (t *tracer) timerEnded(id string, at time.Time, fired bool) {
	ref, ok := t.timers[id]
	if !ok {
		return
	}
	s := &t.steps[ref.step]
	switch {
	case ref.kind == "invoke" && fired && s.Status == api.StepRunning:
		s.Status, s.EndedAt = api.StepFailed, &at
		s.Error = &api.StepErrorInfo{Name: "InvokeTimeout", Message: "the invoked function did not finish within " + s.Timeout}
	case ref.kind == "sleep" || ref.kind == "body":
		s.EndedAt, s.Status = &at, api.StepCompleted
		if !fired {
			s.Status = api.StepCancelled
		}
	}
}

// finish settles what the history left open: a run step whose last attempt failed waits
// for its retry while the run goes on, and failed with the run once it ended.
func (t *tracer) finish() []api.TraceStep {
	if t.steps == nil {
		return []api.TraceStep{}
	}
	if !t.closed {
		return t.steps
	}
	for i := range t.steps {
		s := &t.steps[i]
		if s.Status != api.StepRunning {
			continue
		}
		s.Status = api.StepCancelled
		if s.Kind == api.StepRun && len(s.Attempts) > 0 {
			s.Status = api.StepFailed
		}
	}
	return t.steps
}
