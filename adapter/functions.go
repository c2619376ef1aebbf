package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/oklog/ulid/v2"
	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/activities"
	"github.com/tempestrun/tempest/adapter/internal/bridge"
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

// find is a function by its fully qualified id or its id in the app.
func (fs *Functions) find(id string) (*function, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f, ok := fs.bySlg[id]
	if !ok {
		f, ok = fs.bySlg[fs.appID+"-"+id]
	}
	return f, ok
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
	acts := offline(fs)
	for _, f := range fns {
		r.RegisterWorkflowWithOptions(workflows.Workflow(f.handler, acts), workflow.RegisterOptions{Name: f.slug})
	}
	r.RegisterWorkflowWithOptions(skippedRecordWorkflow, workflow.RegisterOptions{Name: skippedWorkflow})
	return nil
}

// ErrNoServices is what a run's activities answer when they have no connections (replay
// of Functions without an App).
var ErrNoServices = errors.New("tempest: no Temporal or Redis here: these functions only replay (use New to run them)")

// offline are the activities of replayed runs: replay executes no activity, so they need
// no connections; they resolve invoke targets among the definitions.
func offline(fs *Functions) *activities.Activities {
	return &activities.Activities{
		Send: func(context.Context, []json.RawMessage, []ulid.ULID, bool) ([]string, error) {
			return nil, ErrNoServices
		},
		Resolve: func(id string) (activities.FunctionInfo, bool) {
			f, ok := fs.find(id)
			if !ok {
				return activities.FunctionInfo{}, false
			}
			return activities.FunctionInfo{Slug: f.slug, TaskQueue: "tempest-" + fs.appID, Retries: f.retries}, true
		},
	}
}

func init() { bridge.Lookup = lookupForKit }

// lookupForKit serves the test kit (bridge.Lookup).
func lookupForKit(r any, id string) (bridge.Function, bool) {
	fs, ok := r.(*Functions)
	if !ok || fs == nil {
		return bridge.Function{}, false
	}
	f, ok := fs.find(id)
	if !ok {
		return bridge.Function{}, false
	}
	return bridge.Function{
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
