package adapter

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/tempestrun/tempest/internal/registry"
)

// routes is what an event is matched against: this app's own functions and every function
// other apps of the environment published to the registry. It is replaced whole, never
// changed, so ingest reads it without a lock.
type routes struct {
	byEvent   map[string][]*function
	wildcards []*function
	bySlug    map[string]*function
	buffered  []*function // debounce or batch: this process flushes them too
	// paused functions route no events (bySlug still has them: reruns, invokes); their
	// events are stored and listed with ReasonPaused.
	paused []*function
}

// bySlug orders functions by fully qualified id.
func bySlug(a, b *function) int { return strings.Compare(a.slug, b.slug) }

func buildRoutes(fns []*function, paused map[string]bool) *routes {
	r := &routes{byEvent: map[string][]*function{}, bySlug: map[string]*function{}}
	slices.SortFunc(fns, bySlug)
	for _, f := range fns {
		r.bySlug[f.slug] = f
		if paused[f.slug] {
			r.paused = append(r.paused, f)
			continue
		}
		if f.buffer != nil {
			r.buffered = append(r.buffered, f)
		}
		wild := false
		for _, t := range f.triggers {
			if t.prefix != "" {
				wild = true
			} else if fs := r.byEvent[t.event]; len(fs) == 0 || fs[len(fs)-1] != f {
				r.byEvent[t.event] = append(fs, f)
			}
		}
		if wild {
			r.wildcards = append(r.wildcards, f)
		}
	}
	return r
}

// reroute rebuilds the routes from the local functions and the registry's; a.mu is held.
// This app's own entry in the registry is ignored: its local definitions (with handlers)
// are what this process routes, also before it publishes them.
func (a *App) reroute() {
	fns := make([]*function, 0, len(a.functions)+len(a.remote))
	for _, f := range a.functions {
		fns = append(fns, f)
	}
	for slug, f := range a.remote {
		if _, local := a.functions[slug]; !local {
			fns = append(fns, f)
		}
	}
	a.routes.Store(buildRoutes(fns, a.paused))
}

// applyRegistry compiles the functions of the other apps in a registry snapshot (reusing
// those whose version did not change) and reroutes.
func (a *App) applyRegistry(s registry.Snapshot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	remote := map[string]*function{}
	for _, app := range s.Apps {
		if app.ID == a.opts.AppID {
			continue
		}
		for _, c := range app.Functions {
			if f, ok := a.remote[c.ID]; ok && f.version == c.Version {
				remote[c.ID] = f
				continue
			}
			f, err := functionFromConfig(app.ID, app.TaskQueue, c)
			if err != nil { // published by another version of Tempest, say: not routable here
				a.log.Warn("registry: a function cannot be routed", "app", app.ID, "function", c.ID, "err", err)
				continue
			}
			f.version = c.Version
			remote[c.ID] = f
		}
	}
	a.remote = remote
	a.paused = map[string]bool{}
	for fn, p := range s.Pauses {
		if p.Paused() {
			a.paused[fn] = true
		}
	}
	a.reroute()
}

// publish replaces this app's entry in the registry with its functions (sync semantics: a
// function it no longer defines is removed).
func (a *App) publish(ctx context.Context) error {
	a.mu.RLock()
	app := registry.App{ID: a.opts.AppID, TaskQueue: a.opts.TaskQueue, SyncedAt: time.Now().UTC()}
	for _, f := range a.functions {
		app.Functions = append(app.Functions, f.config())
	}
	a.mu.RUnlock()
	slices.SortFunc(app.Functions, func(x, y registry.Function) int { return strings.Compare(x.ID, y.ID) })
	return registry.Publish(ctx, a.redis, a.opts.Environment, app)
}

// routed is a function any app of the environment registered, by fully qualified id.
func (a *App) routed(slug string) (*function, bool) {
	f, ok := a.routes.Load().bySlug[slug]
	return f, ok
}

// Routes reports whether this process routes events to the function with this fully
// qualified id ("<app>-<fn>"), of this app or, once its publish has arrived, of another.
func (a *App) Routes(slug string) bool {
	_, ok := a.routed(slug)
	return ok
}
