package adapter

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/api/enums/v1"

	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/registry"
)

// The REST answers about apps and functions read the environment's registry (one Redis
// round trip), not this process's routes: they show what every app published, also the
// apps a gateway has no code for, and the same on every replica.

// Apps lists the apps of the environment.
func (a *App) Apps(ctx context.Context) ([]api.AppSummary, error) {
	s, err := registry.Load(ctx, a.redis, a.opts.Environment)
	if err != nil {
		return nil, err
	}
	out := make([]api.AppSummary, len(s.Apps))
	for i, r := range s.Apps {
		out[i] = appSummary(r)
	}
	return out, nil
}

// DescribeApp is one app with the workers seen on its task queue.
func (a *App) DescribeApp(ctx context.Context, id string) (*api.AppDetail, error) {
	r, _, err := a.registered(ctx, id)
	if err != nil {
		return nil, err
	}
	ws, err := a.workers(ctx, r.TaskQueue)
	if err != nil {
		return nil, err
	}
	return &api.AppDetail{AppSummary: appSummary(r), Workers: ws}, nil
}

// AppFunctions lists the functions an app published.
func (a *App) AppFunctions(ctx context.Context, id string) ([]api.FunctionInfo, error) {
	r, pauses, err := a.registered(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]api.FunctionInfo, len(r.Functions))
	for i, f := range r.Functions {
		if out[i], err = functionInfo(r, f, pauses); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DescribeFunction is one function of an app, named by its id within the app or its fully
// qualified id, with the workers seen on the app's task queue.
func (a *App) DescribeFunction(ctx context.Context, appID, fn string) (*api.FunctionDetail, error) {
	r, pauses, err := a.registered(ctx, appID)
	if err != nil {
		return nil, err
	}
	// The fully qualified id first: app "a" may have both "x" and "a-x" (fq "a-a-x").
	i := slices.IndexFunc(r.Functions, func(f registry.Function) bool { return f.ID == fn })
	if i < 0 {
		i = slices.IndexFunc(r.Functions, func(f registry.Function) bool { return f.ID == r.ID+"-"+fn })
	}
	if i < 0 {
		return nil, fmt.Errorf("function %s of app %s: %w", fn, appID, api.ErrNotFound)
	}
	info, err := functionInfo(r, r.Functions[i], pauses)
	if err != nil {
		return nil, err
	}
	ws, err := a.workers(ctx, r.TaskQueue)
	if err != nil {
		return nil, err
	}
	return &api.FunctionDetail{FunctionInfo: info, Workers: ws}, nil
}

// registered is app id's registry entry, with the environment's pauses.
func (a *App) registered(ctx context.Context, id string) (registry.App, map[string]registry.Pause, error) {
	s, err := registry.Load(ctx, a.redis, a.opts.Environment)
	if err != nil {
		return registry.App{}, nil, err
	}
	for _, r := range s.Apps {
		if r.ID == id {
			return r, s.Pauses, nil
		}
	}
	return registry.App{}, nil, fmt.Errorf("%s: %w", id, api.ErrAppNotFound)
}

// workers are the pollers Temporal saw on the workflow task queue (every Tempest worker
// polls it; activities are local).
func (a *App) workers(ctx context.Context, taskQueue string) ([]api.Worker, error) {
	resp, err := a.temporal.DescribeTaskQueue(ctx, taskQueue, enums.TASK_QUEUE_TYPE_WORKFLOW)
	if err != nil {
		return nil, fmt.Errorf("describe task queue %s: %w", taskQueue, err)
	}
	out := make([]api.Worker, 0, len(resp.GetPollers()))
	for _, p := range resp.GetPollers() {
		out = append(out, api.Worker{Identity: p.GetIdentity(), LastAccessTime: p.GetLastAccessTime().AsTime()})
	}
	return out, nil
}

func appSummary(r registry.App) api.AppSummary {
	return api.AppSummary{ID: r.ID, TaskQueue: r.TaskQueue, SyncedAt: r.SyncedAt, Version: r.Version, FunctionCount: len(r.Functions),
		URL: r.URL, SDK: r.SDK}
}

func functionInfo(r registry.App, f registry.Function, pauses map[string]registry.Pause) (api.FunctionInfo, error) {
	cfg, err := json.Marshal(f)
	if err != nil {
		return api.FunctionInfo{}, fmt.Errorf("function %s: %w", f.ID, err)
	}
	info := api.FunctionInfo{
		ID: f.ID, FunctionID: strings.TrimPrefix(f.ID, r.ID+"-"), Name: f.Name, AppID: r.ID,
		Version: f.Version, SyncedAt: r.SyncedAt, Config: cfg,
	}
	if p, ok := pauses[f.ID]; ok && p.Paused() {
		at := p.PausedAt
		info.Paused, info.PausedAt = true, &at
	}
	return info, nil
}

// RemoveApp deletes a retired app from the environment's registry (api.Backend).
func (a *App) RemoveApp(ctx context.Context, id string) error {
	app, _, err := a.registered(ctx, id)
	if err != nil {
		return err
	}
	if app.URL != "" { // an SDK app's schedules go with it (a Go app's worker owns its own)
		if err := a.syncSchedules(ctx, a.sdkScope(), id, app.TaskQueue, nil); err != nil {
			return err
		}
	}
	return registry.Remove(ctx, a.redis, a.opts.Environment, id)
}
