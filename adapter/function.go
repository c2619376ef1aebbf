package adapter

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/expr"
	"github.com/tempestrun/tempest/workflows"
)

// Retry limits, as Inngest's.
const (
	DefaultRetries = 4
	MaxRetries     = 20
	MaxTriggers    = 10
	// MaxEventNameLength of a trigger's event name.
	MaxEventNameLength = 255
)

// FunctionOpts configures a function. Zero values are the documented defaults.
type FunctionOpts struct {
	// ID is required; unique in the app. Letters, digits, '-', '_' and '.'.
	ID string
	// Name shown to people; defaults to ID.
	Name string
	// Retries of each step (and of the handler body outside steps): nil means 4, so 5
	// attempts; 0–20.
	Retries *int
	// OnFailure runs after the function's run fails for good (not when it is cancelled):
	// it is registered as the function "<ID>-failure", triggered by inngest/function.failed
	// for this function only, with 1 retry.
	OnFailure SDKFunction[FunctionFailed]
	// Cancel lists up to 5 events that cancel a running run (cancelOn): see Cancel.
	Cancel []Cancel
	// Timeouts cancel (not fail) runs that wait too long to start or take too long.
	Timeouts *Timeouts
	// Singleton allows one active run per key: see Singleton.
	Singleton *Singleton
	// RateLimit drops runs over a rate (lossy); see RateLimit.
	RateLimit *RateLimit
	// Throttle delays runs over a rate (non-lossy, FIFO); see Throttle.
	Throttle *Throttle
	// Idempotency is a CEL key over `event`: one run per key value per 24 h (Inngest's
	// rateLimit{1, 24h, key}). Separately, the same event id never starts a function twice
	// within 24 h; other functions still run.
	Idempotency *string
	// Priority moves runs ahead of waiting work; see Priority.
	Priority *Priority
	// Concurrency limits the steps executing at once (up to 2 limits); see Concurrency.
	Concurrency []Concurrency
	// Debounce starts one run for the last event of a quiet period; see Debounce.
	Debounce *Debounce
	// BatchEvents starts one run for many events; see BatchEvents.
	BatchEvents *BatchEvents
}

// Singleton keeps at most one active (running, sleeping or waiting) run per key. Key is CEL
// over `event` (nil: one per function); a key that evaluates to false, or fails, leaves the
// event out of the rule. Mode "skip" records a new run as Skipped while another holds the
// key; "cancel" cancels the holder and starts the new run.
type Singleton struct {
	Key  *string
	Mode string
}

// Timeouts of a run. Start counts from the run's creation to its first step (it matters
// when runs wait to start); Finish counts from the first step to the end: when it passes,
// the step in flight completes and the run is cancelled before the next one. nil: none.
type Timeouts struct {
	Start  *time.Duration
	Finish *time.Duration
}

// Cancel is a cancelOn rule: an event named Event, received after the run started and
// matching If (CEL over `event`, the run's trigger, and `async`, the new event) or Match
// (a path like "data.orderId" that must be equal in both), cancels the run at its next step
// boundary. Without If or Match, every such event cancels every running run of the
// function. Timeout (default one year, at most 366 days) is how long the rule applies.
type Cancel struct {
	Event   string
	If      *string
	Match   string
	Timeout time.Duration
}

// MaxCancelRules is Inngest's limit of cancelOn rules per function.
const MaxCancelRules = 5

// FunctionFailed is the data of the system events inngest/function.failed, .finished and
// .cancelled: the function, the run, its triggering event(s), and its result or error.
type FunctionFailed struct {
	// FunctionID is the fully qualified id of the function whose run ended.
	FunctionID string `json:"function_id"`
	RunID      string `json:"run_id"`
	// Event is the run's triggering event; Events all of them (a batch).
	Event  json.RawMessage   `json:"event"`
	Events []json.RawMessage `json:"events"`
	// Result is the handler's output (function.finished of a completed run).
	Result json.RawMessage `json:"result,omitempty"`
	// Error is why the run failed or was cancelled.
	Error *RunError `json:"error,omitempty"`
	// CorrelationID links a run started by step.Invoke to its caller.
	CorrelationID string `json:"correlation_id,omitempty"`
	Inngest       struct {
		// Status is "Completed", "Failed" or "Cancelled".
		Status string `json:"status"`
	} `json:"_inngest"`
}

// RunError is a run's error as Inngest serializes it: Name is its kind ("Error",
// "StepError", "NonRetriableError", ...), Message (and Error, the same) its message.
type RunError struct {
	Error   string `json:"error"`
	Name    string `json:"name"`
	Message string `json:"message"`
}

// Trigger is an event trigger (EventTrigger) or a schedule (CronTrigger). Event is a name,
// or a wildcard ending in "/*" or ".*" (for example "app/*"); Expression is an optional CEL
// condition over `event`. Cron is a cron expression (and Event is empty).
type Trigger struct {
	Event      string
	Expression *string
	Cron       string
}

// Triggerable is one trigger or several.
type Triggerable interface{ triggers() []Trigger }

func (t Trigger) triggers() []Trigger { return []Trigger{t} }

// MultipleTriggers lets a function run on any of several events.
type MultipleTriggers []Trigger

func (m MultipleTriggers) triggers() []Trigger { return m }

// EventTrigger triggers on an event name, optionally filtered by a CEL expression over
// `event` (for example `event.data.plan == "pro"`); nil means every such event.
func EventTrigger(name string, expression *string) Trigger {
	return Trigger{Event: name, Expression: expression}
}

// Ptr returns a pointer to v, for optional fields.
func Ptr[T any](v T) *T { return &v }

// Event is an event as functions and clients see it.
type Event = GenericEvent[map[string]any]

// GenericEvent is an event whose data decodes into DATA.
type GenericEvent[DATA any] struct {
	ID        string         `json:"id,omitempty"`
	Name      string         `json:"name"`
	Data      DATA           `json:"data"`
	User      map[string]any `json:"user,omitempty"`
	Timestamp int64          `json:"ts,omitempty"`
	Version   string         `json:"v,omitempty"`
}

// Input is what a handler receives.
type Input[T any] struct {
	// Event is the triggering event (the first of Events).
	Event GenericEvent[T] `json:"event"`
	// Events of the run (one, until batching).
	Events   []GenericEvent[T] `json:"events"`
	InputCtx InputCtx          `json:"ctx"`
}

// InputCtx describes the run.
type InputCtx struct {
	FunctionID string `json:"fn_id"`
	RunID      string `json:"run_id"`
	// Attempt of the handler body, 0-based (each step counts its own; see step.Attempt).
	Attempt int `json:"attempt"`
}

// SDKFunction is a handler. It runs as Temporal workflow code: keep I/O, clocks and
// randomness inside steps.
type SDKFunction[T any] func(ctx context.Context, input Input[T]) (any, error)

// ServableFunction is a registered function.
type ServableFunction interface {
	// ID is the function's id within its app.
	ID() string
	// FullyQualifiedID is "<app id>-<id>", the id used in REST, events and the Web UI.
	FullyQualifiedID() string
	Name() string
	Config() FunctionOpts
}

type function struct {
	opts      FunctionOpts
	slug      string
	taskQueue string    // where its runs go: its app's task queue
	version   string    // registry version, for functions of other apps
	trigs     []Trigger // as given, for the registry
	retries   int
	triggers  []compiledTrigger
	crons     []string
	cancel    []workflows.CancelRule
	handler   workflows.Handler
	url       string // where an SDK app serves it ("" for Go functions)

	startTimeout, finishTimeout time.Duration
	singletonMode               string        // "" when the function is not a singleton
	singletonKey                *expr.Program // nil: one run per function
	rateLimit, throttle         *limiter
	priority                    *expr.Program
	concurrency                 []concurrencyLimit
	buffer                      *bufferConfig // debounce or batch
}

type compiledTrigger struct {
	event  string
	prefix string // for wildcards: the name up to and including the '/' or '.'
	cond   *expr.Program
}

func (f *function) ID() string               { return f.opts.ID }
func (f *function) FullyQualifiedID() string { return f.slug }
func (f *function) Config() FunctionOpts     { return f.opts }
func (f *function) Name() string {
	if f.opts.Name != "" {
		return f.opts.Name
	}
	return f.opts.ID
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// CreateFunction defines a function on app (a running *App, or *Functions). Invalid configuration (empty or duplicate
// id, a bad trigger, invalid CEL, retries out of range) is an error here, never at run time.
func CreateFunction[T any](app Registrar, opts FunctionOpts, trigger Triggerable, fn SDKFunction[T]) (ServableFunction, error) {
	f, err := newFunction(app.registrarAppID(), opts, trigger)
	if err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("function %q: handler is nil", opts.ID)
	}
	f.handler = func(ctx context.Context, call workflows.Call) (any, error) {
		in := Input[T]{InputCtx: InputCtx{FunctionID: f.slug, RunID: call.Input.RunID, Attempt: call.Attempt}}
		for i, raw := range call.Input.Events {
			var ev GenericEvent[T]
			if err := json.Unmarshal(raw, &ev); err != nil {
				return nil, &workflows.NonRetriableError{Err: fmt.Errorf("event %d does not decode into %T: %w", i, ev, err)}
			}
			in.Events = append(in.Events, ev)
		}
		if len(in.Events) > 0 {
			in.Event = in.Events[0]
		}
		out, err := fn(ctx, in)
		return out, toRun(err)
	}
	if err := app.addFunction(f); err != nil {
		return nil, err
	}
	if opts.OnFailure != nil {
		_, err := CreateFunction(app, FunctionOpts{ID: opts.ID + "-failure", Name: f.Name() + " (on failure)", Retries: Ptr(1)},
			EventTrigger(workflows.EventFunctionFailed, Ptr(fmt.Sprintf("event.data.function_id == %q", f.slug))), opts.OnFailure)
		if err != nil {
			return nil, fmt.Errorf("function %q: on-failure handler: %w", opts.ID, err)
		}
	}
	return f, nil
}

func newFunction(appID string, opts FunctionOpts, trigger Triggerable) (*function, error) {
	return compileFunction(appID, opts, trigger, false)
}

// compileFunction validates and compiles a function's configuration; invokeOnly allows no
// triggers (an SDK app's function that only step.invoke starts).
func compileFunction(appID string, opts FunctionOpts, trigger Triggerable, invokeOnly bool) (*function, error) {
	if opts.ID == "" {
		return nil, fmt.Errorf("function id is required")
	}
	if !idRE.MatchString(opts.ID) {
		return nil, fmt.Errorf("function id %q: use 1–128 letters, digits, '-', '_' or '.', starting with a letter or digit", opts.ID)
	}
	f := &function{opts: opts, slug: appID + "-" + opts.ID, retries: DefaultRetries}
	if opts.Retries != nil {
		if *opts.Retries < 0 || *opts.Retries > MaxRetries {
			return nil, fmt.Errorf("function %q: retries is %d, must be 0–%d", opts.ID, *opts.Retries, MaxRetries)
		}
		f.retries = *opts.Retries
	}
	if t := opts.Timeouts; t != nil {
		for name, d := range map[string]*time.Duration{"start": t.Start, "finish": t.Finish} {
			if d != nil && *d <= 0 {
				return nil, fmt.Errorf("function %q: %s timeout %s must be more than 0", opts.ID, name, *d)
			}
		}
		if t.Start != nil {
			f.startTimeout = *t.Start
		}
		if t.Finish != nil {
			f.finishTimeout = *t.Finish
		}
	}
	if sg := opts.Singleton; sg != nil {
		if sg.Mode != flowcontrol.SingletonSkip && sg.Mode != flowcontrol.SingletonCancel {
			return nil, fmt.Errorf("function %q: singleton mode %q: use \"skip\" or \"cancel\"", opts.ID, sg.Mode)
		}
		f.singletonMode = sg.Mode
		if sg.Key != nil {
			p, err := expr.Compile(*sg.Key)
			if err != nil {
				return nil, fmt.Errorf("function %q: singleton key: %w", opts.ID, err)
			}
			f.singletonKey = p
		}
	}
	if err := f.compileFlowControl(opts); err != nil {
		return nil, fmt.Errorf("function %q: %w", opts.ID, err)
	}
	if err := f.compileBuffers(opts); err != nil {
		return nil, fmt.Errorf("function %q: %w", opts.ID, err)
	}
	if len(opts.Cancel) > MaxCancelRules {
		return nil, fmt.Errorf("function %q: %d cancel rules, at most %d are allowed", opts.ID, len(opts.Cancel), MaxCancelRules)
	}
	for i, c := range opts.Cancel {
		r := workflows.CancelRule{Event: c.Event, Match: c.Match, Timeout: c.Timeout}
		if c.If != nil {
			r.If = *c.If
		}
		if err := workflows.ValidateWait(r.Event, r.If, r.Match, r.Timeout, false); err != nil {
			return nil, fmt.Errorf("function %q: cancel rule %d: %w", opts.ID, i, err)
		}
		f.cancel = append(f.cancel, r)
	}
	if trigger == nil || len(trigger.triggers()) == 0 {
		if !invokeOnly {
			return nil, fmt.Errorf("function %q: at least one trigger is required", opts.ID)
		}
		return f, nil
	}
	if n := len(trigger.triggers()); n > MaxTriggers {
		return nil, fmt.Errorf("function %q: %d triggers, at most %d are allowed", opts.ID, n, MaxTriggers)
	}
	f.trigs = trigger.triggers()
	for i, t := range trigger.triggers() {
		if t.Cron != "" {
			if t.Event != "" || t.Expression != nil {
				return nil, fmt.Errorf("function %q: trigger %d: a trigger has a cron or an event, not both", opts.ID, i)
			}
			if err := validateCron(t.Cron); err != nil {
				return nil, fmt.Errorf("function %q: trigger %d: %w", opts.ID, i, err)
			}
			if slices.Contains(f.crons, t.Cron) {
				return nil, fmt.Errorf("function %q: cron %q is listed twice", opts.ID, t.Cron)
			}
			f.crons = append(f.crons, t.Cron)
			continue
		}
		ct, err := compileTrigger(t)
		if err != nil {
			return nil, fmt.Errorf("function %q: trigger %d: %w", opts.ID, i, err)
		}
		f.triggers = append(f.triggers, ct)
	}
	return f, nil
}

func compileTrigger(t Trigger) (compiledTrigger, error) {
	ct := compiledTrigger{event: t.Event}
	switch {
	case t.Event == "":
		return ct, fmt.Errorf("event name is empty")
	case len(t.Event) > MaxEventNameLength:
		return ct, fmt.Errorf("event name is %d characters, at most %d are allowed", len(t.Event), MaxEventNameLength)
	case strings.Contains(t.Event, "*"):
		p, ok := strings.CutSuffix(t.Event, "*")
		if !ok || strings.Contains(p, "*") || !(strings.HasSuffix(p, "/") || strings.HasSuffix(p, ".")) || len(p) < 2 {
			return ct, fmt.Errorf("event %q: a wildcard must be the last character and follow '/' or '.' (like \"app/*\")", t.Event)
		}
		ct.prefix = p
	}
	if t.Expression != nil && strings.TrimSpace(*t.Expression) != "" {
		p, err := expr.CompileBool(*t.Expression)
		if err != nil {
			return ct, err
		}
		ct.cond = p
	}
	return ct, nil
}

// matches reports whether an event (name and its map form for CEL) fires the trigger.
func (t compiledTrigger) matches(name string, event func() map[string]any) bool {
	if t.prefix != "" {
		if !strings.HasPrefix(name, t.prefix) {
			return false
		}
	} else if name != t.event {
		return false
	}
	return t.cond == nil || t.cond.Match(map[string]any{"event": event()})
}
