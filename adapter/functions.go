package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/adapter/internal/kit"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/workflows"
)

// Registrar is what CreateFunction adds a function to: a running *App, or a *Functions
// that holds definitions without any connection.
type Registrar interface {
	addFunction(f *function) error
	registrarAppID() string
}

// Functions is an app's function definitions (configuration and handlers) apart from the
// connections that run them, as River's Workers are apart from its client: build them with
// CreateFunction, run them with New (Options.Functions), or replay recorded histories
// against them with RegisterWorkflows, with no Temporal or Redis at hand.
type Functions struct {
	appID string
	mu    sync.Mutex
	bySlg map[string]*function
}

// NewFunctions starts an empty set of definitions for the app appID.
func NewFunctions(appID string) *Functions {
	return &Functions{appID: appID, bySlg: map[string]*function{}}
}

func (fs *Functions) registrarAppID() string { return fs.appID }

func (fs *Functions) addFunction(f *function) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if _, dup := fs.bySlg[f.slug]; dup {
		return fmt.Errorf("function %q is already defined in app %q", f.opts.ID, fs.appID)
	}
	fs.bySlg[f.slug] = f
	return nil
}

func (fs *Functions) list() []*function {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]*function, 0, len(fs.bySlg))
	for _, f := range fs.bySlg {
		out = append(out, f)
	}
	slices.SortFunc(out, bySlug)
	return out
}

// RegisterWorkflows registers the functions' workflows on r without an app, for a
// worker.WorkflowReplayer: replay executes no activity, so nothing reaches a service (an
// attempt to would fail with ErrNoServices).
func (fs *Functions) RegisterWorkflows(r WorkflowRegistry) error {
	fns := fs.list()
	if len(fns) == 0 {
		return fmt.Errorf("app %q has no functions: define some with CreateFunction", fs.appID)
	}
	engine := offline{fs}
	for _, f := range fns {
		r.RegisterWorkflowWithOptions(workflows.Workflow(f.handler, engine), workflow.RegisterOptions{Name: f.slug})
	}
	r.RegisterWorkflowWithOptions(skippedRecordWorkflow, workflow.RegisterOptions{Name: skippedWorkflow})
	return nil
}

// ErrNoServices is what a run's engine answers when it has no connections (replay of
// Functions without an App).
var ErrNoServices = errors.New("tempest: no Temporal or Redis here: these functions only replay (use New to run them)")

// offline is the engine of replayed runs: it knows the functions, and nothing else.
type offline struct{ fs *Functions }

func (o offline) SendEvents(context.Context, []json.RawMessage, []ulid.ULID, bool) ([]string, error) {
	return nil, ErrNoServices
}
func (o offline) RegisterWaits(context.Context, []flowcontrol.Wait) error { return ErrNoServices }
func (o offline) ClaimWait(context.Context, flowcontrol.Wait, string) (int, string, error) {
	return 0, "", ErrNoServices
}
func (o offline) ReleaseSingleton(context.Context, string, string) error { return ErrNoServices }
func (o offline) CancelRequested(context.Context, string) bool           { return false }
func (o offline) AcquireLeases(context.Context, string, []flowcontrol.Lease, string, string, float64, time.Duration) (bool, error) {
	return false, ErrNoServices
}
func (o offline) ReleaseLeases(context.Context, string, []flowcontrol.Lease, string) error {
	return ErrNoServices
}
func (o offline) PassGate(context.Context, flowcontrol.Gate, string) (time.Duration, error) {
	return 0, ErrNoServices
}

func (o offline) Function(id string) (workflows.FunctionInfo, bool) {
	o.fs.mu.Lock()
	defer o.fs.mu.Unlock()
	f, ok := o.fs.bySlg[id]
	if !ok {
		f, ok = o.fs.bySlg[o.fs.appID+"-"+id]
	}
	if !ok {
		return workflows.FunctionInfo{}, false
	}
	return workflows.FunctionInfo{Slug: f.slug, TaskQueue: "tempest-" + o.fs.appID, Retries: f.retries}, true
}

func init() { kit.Lookup = lookupForKit }

// lookupForKit serves the test kit (kit.Lookup).
func lookupForKit(r any, id string) (kit.Function, bool) {
	fs, ok := r.(*Functions)
	if !ok || fs == nil {
		return kit.Function{}, false
	}
	fs.mu.Lock()
	f, ok := fs.bySlg[id]
	if !ok {
		f, ok = fs.bySlg[fs.appID+"-"+id]
	}
	fs.mu.Unlock()
	if !ok {
		return kit.Function{}, false
	}
	return kit.Function{
		Slug: f.slug, Retries: f.retries, Cancel: f.cancel, FinishTimeout: f.finishTimeout, Handler: f.handler,
		Triggers: func(name string, ev map[string]any) bool {
			for _, t := range f.triggers {
				if t.matches(name, func() map[string]any { return ev }) {
					return true
				}
			}
			return false
		},
	}, true
}
