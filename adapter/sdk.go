package adapter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/activities"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/registry"
	"github.com/tempestrun/tempest/internal/sdkhttp"
	"github.com/tempestrun/tempest/workflows"
)

// SDKTaskQueue is where the runs of the functions Inngest SDK apps serve over HTTP go: every
// Tempest server of the environment runs a worker on it that calls the apps.
func (a *App) SDKTaskQueue() string { return "tempest-sdk-" + a.opts.Environment }

// ErrInvalidSync is a sync that can never succeed as sent (HTTP 400); the message says why.
var ErrInvalidSync = sdkhttp.ErrInvalid

// SyncOutcome is what a sync did.
type SyncOutcome = api.SyncResult

// RegisterSDKApp registers the functions an SDK app syncs (the body of POST /fn/register,
// or of an in-band answer) in the environment's registry: from then on every process
// routes events to them and the SDK worker runs them by calling the app. A sync that changes
// nothing publishes nothing. Errors wrapping ErrInvalidSync say what to fix in the app.
func (a *App) RegisterSDKApp(ctx context.Context, body []byte) (*SyncOutcome, error) {
	r, err := sdkhttp.ParseRegister(body)
	if err != nil {
		return nil, err
	}
	if err := sdkhttp.CheckSDK(r.SDK); err != nil {
		return nil, err
	}
	appID := r.App()
	if appID == a.opts.AppID {
		return nil, fmt.Errorf("%w: app id %q is this Tempest process's own: give the SDK app another id", ErrInvalidSync, appID)
	}
	app := registry.App{ID: appID, TaskQueue: a.SDKTaskQueue(), URL: r.URL, SDK: r.SDK, SyncedAt: time.Now().UTC()}
	var compiled []*function
	for _, sf := range r.Functions {
		c, err := sf.Config()
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(app.Functions, func(o registry.Function) bool { return o.ID == c.ID }) {
			return nil, fmt.Errorf("%w: function %q is listed twice", ErrInvalidSync, c.ID)
		}
		if !strings.HasPrefix(c.ID, appID+"-") {
			return nil, fmt.Errorf("%w: function %q does not start with the app id %q", ErrInvalidSync, c.ID, appID+"-")
		}
		f, err := functionFromConfig(appID, app.TaskQueue, c)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidSync, err)
		}
		compiled = append(compiled, f)
		app.Functions = append(app.Functions, c)
	}
	slices.SortFunc(app.Functions, func(x, y registry.Function) int { return strings.Compare(x.ID, y.ID) })
	out := &SyncOutcome{AppID: appID, Functions: len(app.Functions)}
	prev, _, err := a.registered(ctx, appID)
	switch {
	case errors.Is(err, api.ErrAppNotFound):
	case err != nil:
		return out, err
	case prev.URL == "":
		return out, fmt.Errorf("%w: app id %q belongs to a Go app of this environment: give the SDK app another id", ErrInvalidSync, appID)
	case prev.URL == app.URL && prev.SDK == app.SDK && sameFunctions(prev.Functions, app.Functions):
		return out, nil
	}
	// Schedules first: a sync retried after a failure here publishes then.
	if err := a.syncSchedules(ctx, a.sdkScope(), appID, app.TaskQueue, compiled); err != nil {
		return out, fmt.Errorf("cron schedules of app %s: %w", appID, err)
	}
	if err := registry.Publish(ctx, a.redis, a.opts.Environment, app); err != nil {
		return out, err
	}
	out.Modified = true
	// This process routes to the app at once (the others within moments, on the notice).
	if snap, err := registry.Load(ctx, a.redis, a.opts.Environment); err == nil {
		a.applyRegistry(snap)
	}
	a.log.Info("SDK app synced", "app", appID, "url", r.URL, "sdk", r.SDK, "functions", len(app.Functions))
	return out, nil
}

func sameFunctions(have, want []registry.Function) bool {
	if len(have) != len(want) {
		return false
	}
	for i := range have {
		h := have[i]
		h.Version = ""
		if registry.Hash(h) != registry.Hash(want[i]) {
			return false
		}
	}
	return true
}

// syncTimeout bounds Tempest's PUT to an app (the app registers with /fn/register meanwhile).
const syncTimeout = 30 * time.Second

// SyncSDKApp asks the app served at url to sync, as Inngest's server does: a PUT (signed
// when Tempest has a signing key). An app that answers in band sends its functions back,
// which are registered here; one that syncs out of band has registered them with
// POST /fn/register before it answers.
func (a *App) SyncSDKApp(ctx context.Context, url string) (*SyncOutcome, error) {
	if _, err := sdkhttp.CheckURL(url); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"url": url})
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	kind := "cloud"
	if a.opts.Dev {
		kind = "dev"
	}
	req.Header.Set("X-Inngest-Server-Kind", kind)
	if key := a.callKey(); key != "" {
		req.Header.Set("x-inngest-sync-kind", "in_band")
		req.Header.Set("X-Inngest-Signature", sdkhttp.Sign(body, key, time.Now()))
	}
	resp, err := a.sdkClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: the app at %s did not answer the sync: %v", ErrAppUnreachable, url, err)
	}
	defer resp.Body.Close()
	ans, err := sdkhttp.ReadAnswer(resp, time.Now())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrAppUnreachable, url, err)
	}
	if ans.Status == http.StatusUnauthorized {
		return nil, fmt.Errorf("%w: the app at %s refused the sync (401): its INNGEST_SIGNING_KEY differs from Tempest's", ErrInvalidSync, url)
	}
	if !ans.SDK {
		return nil, fmt.Errorf("%w: %s answered HTTP %d without an Inngest SDK's headers: is it the app's serve URL?", ErrInvalidSync, url, ans.Status)
	}
	if resp.Header.Get("x-inngest-sync-kind") == "in_band" && ans.Status == 200 {
		if key := a.callKey(); key != "" {
			if err := sdkhttp.Verify(resp.Header.Get("X-Inngest-Signature"), ans.Body, key, time.Now()); err != nil {
				return nil, fmt.Errorf("%w: the app's in-band answer: %v", ErrInvalidSync, err)
			}
		}
		out, err := a.RegisterSDKApp(ctx, ans.Body)
		if out != nil {
			out.Kind = "in_band"
		}
		return out, err
	}
	var msg struct {
		Message  string `json:"message"`
		Modified bool   `json:"modified"`
	}
	_ = json.Unmarshal(ans.Body, &msg)
	if ans.Status/100 != 2 {
		return nil, fmt.Errorf("%w: the app at %s could not sync (HTTP %d): %s", ErrInvalidSync, url, ans.Status, msg.Message)
	}
	// Out of band: the app registered through /fn/register before answering.
	out := &SyncOutcome{Modified: msg.Modified, Kind: "out_of_band"}
	for _, app := range a.sdkApps(ctx) {
		if app.URL == url {
			out.AppID, out.Functions = app.ID, len(app.Functions)
		}
	}
	return out, nil
}

// ErrAppUnreachable is an app that did not answer (it may later).
var ErrAppUnreachable = api.ErrAppUnreachable

// SDKAppURL is the serve URL of a synced SDK app.
func (a *App) SDKAppURL(ctx context.Context, appID string) (string, error) {
	app, _, err := a.registered(ctx, appID)
	if err != nil {
		return "", err
	}
	if app.URL == "" {
		return "", fmt.Errorf("%w: app %q is a Go app: its workers publish it, there is nothing to sync", ErrInvalidSync, appID)
	}
	return app.URL, nil
}

func (a *App) sdkApps(ctx context.Context) []registry.App {
	s, err := registry.Load(ctx, a.redis, a.opts.Environment)
	if err != nil {
		return nil
	}
	var out []registry.App
	for _, app := range s.Apps {
		if app.URL != "" {
			out = append(out, app)
		}
	}
	return out
}

// callKey signs requests to apps; dev sends none, as Inngest's dev server.
func (a *App) callKey() string {
	if a.opts.Dev {
		return ""
	}
	return a.opts.SigningKey
}

// callApp is activities.Activities.CallApp: one HTTP call to the app serving fnID.
func (a *App) callApp(ctx context.Context, fnID, stepID string, req sdkhttp.Request) (json.RawMessage, error) {
	f, ok := a.routed(fnID)
	if !ok || f.url == "" {
		return nil, fmt.Errorf("function %s is not registered by any SDK app (sync the app)", fnID)
	}
	run, qi := req.Ctx.RunID, req.Ctx.QIID
	known := map[string]bool{}
	for id := range req.Steps {
		known[id] = true
	}
	if qi != "" {
		// Steps an earlier attempt of this call checkpointed are sent as done: the app does
		// not run them again. Without Redis the call waits for a retry rather than risk it.
		prior, err := flowcontrol.BeginCall(ctx, a.redis, run, qi, req.Ctx.GenerationID)
		if err != nil {
			return nil, err
		}
		for _, op := range parseOps(prior) {
			if memo, ok := op.Memo(); ok && !known[op.ID] {
				req.Steps[op.ID] = memo
				req.Ctx.Stack.Stack = append(req.Ctx.Stack.Stack, op.ID)
				known[op.ID] = true
			}
		}
		req.Ctx.Stack.Current = len(req.Ctx.Stack.Stack)
	}
	if err := a.useAPIIfLarge(ctx, &req); err != nil {
		return nil, err
	}
	hr, err := sdkhttp.NewCall(ctx, f.url, fnID, stepID, req, a.callKey(), time.Now())
	if err != nil {
		return nil, &workflows.NonRetriableError{Err: err}
	}
	resp, err := a.sdkClient.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("calling the app at %s: %w", f.url, err)
	}
	defer resp.Body.Close()
	ans, err := sdkhttp.ReadAnswer(resp, time.Now())
	if errors.Is(err, sdkhttp.ErrTooLarge) {
		return nil, &workflows.NonRetriableError{Err: err}
	}
	if err != nil {
		return nil, err
	}
	if qi != "" && ans.SDK && ans.Status == http.StatusPartialContent {
		// The call's result is the steps it checkpointed, then what it answered.
		completed := slices.ContainsFunc(ans.Ops, func(op sdkhttp.Op) bool { return op.Op == sdkhttp.OpRunComplete })
		all, err := flowcontrol.Checkpoints(ctx, a.redis, run, completed)
		if err != nil {
			return nil, err
		}
		var ops []sdkhttp.Op
		for _, op := range parseOps(all) {
			if !known[op.ID] {
				known[op.ID] = true
				ops = append(ops, op)
			}
		}
		ans.Ops = append(ops, ans.Ops...)
	}
	return outcome(f.url, ans)
}

// useAPIIfLarge keeps the steps and events of a call whose body would be over
// sdkhttp.MaxRequestBody in Redis and sends the call without them (use_api): the app reads
// them from GET /v0/runs/{run}/actions and /batch, as it does with Inngest.
func (a *App) useAPIIfLarge(ctx context.Context, req *sdkhttp.Request) error {
	size := len(req.Event)
	for _, ev := range req.Events {
		size += len(ev)
	}
	for id, m := range req.Steps {
		size += len(id) + len(m)
	}
	if size <= sdkhttp.MaxRequestBody-64<<10 { // room for the rest of the body
		return nil
	}
	steps, err := json.Marshal(req.Steps)
	if err != nil {
		return err
	}
	events, err := json.Marshal(req.Events)
	if err != nil {
		return err
	}
	if err := flowcontrol.StoreCallState(ctx, a.redis, req.Ctx.RunID, steps, events); err != nil {
		return err
	}
	req.Steps, req.Events = map[string]json.RawMessage{}, []json.RawMessage{}
	req.UseAPI, req.Ctx.UseAPI = true, true
	return nil
}

// CallState is what a call sent with use_api left out: the run's memoized steps (actions)
// or its events (batch), as JSON.
func (a *App) CallState(ctx context.Context, runID, part string) (json.RawMessage, error) {
	steps, events, err := flowcontrol.CallState(ctx, a.redis, runID)
	if errors.Is(err, flowcontrol.ErrNoCallState) {
		return nil, fmt.Errorf("run %s: %w", runID, api.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if part == "batch" {
		return events, nil
	}
	return steps, nil
}

// parseOps reads stored ops, skipping any that do not parse (they were checked when stored).
func parseOps(raw []json.RawMessage) []sdkhttp.Op {
	ops := make([]sdkhttp.Op, 0, len(raw))
	for _, r := range raw {
		var op sdkhttp.Op
		if json.Unmarshal(r, &op) == nil && op.ID != "" {
			ops = append(ops, op)
		}
	}
	return ops
}

// ErrStaleCheckpoint is a checkpoint from a call attempt Tempest no longer waits for (409).
var ErrStaleCheckpoint = api.ErrStaleCheckpoint

// Checkpoint stores the steps an app reports during a call (POST /v1/checkpoint/{run}/async)
// before answering: durable in Redis, fenced by the call's generation.
func (a *App) Checkpoint(ctx context.Context, runID string, body []byte) error {
	var cp struct {
		RunID        string       `json:"run_id"`
		QIID         string       `json:"qi_id"`
		GenerationID int          `json:"generation_id"`
		Steps        []sdkhttp.Op `json:"steps"`
	}
	if err := json.Unmarshal(body, &cp); err != nil {
		return &api.InputError{Msg: "the checkpoint is not JSON: " + err.Error()}
	}
	if cp.QIID == "" {
		return &api.InputError{Msg: "qi_id is missing: checkpoints belong to a call Tempest made"}
	}
	var ops []json.RawMessage
	for _, op := range cp.Steps {
		switch op.Op {
		case sdkhttp.OpStepRun, sdkhttp.OpStep, sdkhttp.OpStepFailed:
		case sdkhttp.OpStepPlanned, sdkhttp.OpNone:
			continue // progress only
		default:
			return &api.InputError{Msg: fmt.Sprintf("op %s cannot be checkpointed: answer it from the call", op.Op)}
		}
		if len(op.Data)+len(op.Error) > workflows.MaxStepOutput {
			return fmt.Errorf("%w: step %s's output is over 4 MiB", api.ErrTooLarge, op.Label())
		}
		// Only what the run needs is kept (the SDK adds fields of its own).
		b, err := json.Marshal(sdkhttp.Op{Op: op.Op, ID: op.ID, Name: op.Name, DisplayName: op.DisplayName,
			Data: op.Data, Error: op.Error, Userland: op.Userland, Timing: op.Timing})
		if err != nil {
			return err
		}
		ops = append(ops, b)
	}
	if len(ops) == 0 {
		return nil
	}
	switch o, err := flowcontrol.AppendCheckpoint(ctx, a.redis, runID, cp.QIID, cp.GenerationID, ops); {
	case err != nil:
		return err
	case o == flowcontrol.CheckpointStale:
		return ErrStaleCheckpoint
	case o == flowcontrol.CheckpointTooLarge:
		return fmt.Errorf("%w: the run's checkpoints would exceed 32 MiB", api.ErrTooLarge)
	}
	return nil
}

// outcome classifies an app's answer: results for the run, or an error for the step's
// retries (retry-after and x-inngest-no-retry honoured).
func outcome(url string, ans sdkhttp.Answer) (json.RawMessage, error) {
	fail := func(err error) (json.RawMessage, error) {
		switch {
		case ans.NoRetry:
			return nil, &workflows.NonRetriableError{Err: err}
		case ans.RetryAfter > 0:
			return nil, &workflows.RetryAfterError{Delay: ans.RetryAfter, Err: err}
		}
		return nil, err
	}
	switch {
	case ans.Status == http.StatusUnauthorized:
		return nil, fmt.Errorf("the app at %s refused the call (401): its INNGEST_SIGNING_KEY differs from Tempest's", url)
	case !ans.SDK:
		body := string(ans.Body)
		if len(body) > 200 {
			body = body[:200] + "…"
		}
		return nil, fmt.Errorf("the app at %s answered HTTP %d, not as an Inngest SDK (no X-Inngest-SDK header): %s", url, ans.Status, body)
	case ans.Status == http.StatusOK && len(ans.Body) > workflows.MaxStepOutput:
		return nil, &workflows.NonRetriableError{Err: fmt.Errorf("the function returned %d bytes of JSON, over the limit of %d", len(ans.Body), workflows.MaxStepOutput)}
	case ans.Status == http.StatusOK:
		data := ans.Body
		if len(bytes.TrimSpace(data)) == 0 {
			data = []byte("null")
		}
		return json.Marshal(activities.CallOutcome{Status: 200, Data: data, Version: ans.Version})
	case ans.Status == http.StatusPartialContent:
		for _, op := range ans.Ops {
			if n := len(op.Data) + len(op.Error); n > workflows.MaxStepOutput {
				return nil, &workflows.NonRetriableError{Err: fmt.Errorf("step %s returned %d bytes of JSON, over the limit of %d", op.Label(), n, workflows.MaxStepOutput)}
			}
			if op.Op == sdkhttp.OpStepError {
				e := sdkhttp.ParseError(op.Error)
				return fail(fmt.Errorf("step %s: %s: %s", op.Label(), e.Name, e.Message))
			}
		}
		return json.Marshal(activities.CallOutcome{Status: 206, Ops: ans.Ops, Version: ans.Version})
	}
	e := sdkhttp.ParseError(ans.Body)
	if e.Name != "Error" && !strings.Contains(e.Message, e.Name) {
		return fail(fmt.Errorf("%s: %s", e.Name, e.Message))
	}
	return fail(errors.New(e.Message))
}

// sdkWorkflow is the workflow of every SDK function's runs, registered as the dynamic
// workflow of the SDK task queue: the workflow type is the function's fully qualified id.
func sdkWorkflow(acts *activities.Activities) func(workflow.Context, converter.EncodedValues) (any, error) {
	run := workflows.Workflow(workflows.SDK, acts)
	return func(ctx workflow.Context, args converter.EncodedValues) (any, error) {
		var in workflows.RunInput
		if err := args.Get(&in); err != nil {
			return nil, err
		}
		return run(ctx, in)
	}
}

// DynamicRegistry is where RegisterSDKWorkflow puts the workflow of SDK runs: a
// worker.WorkflowReplayer, to check recorded histories of SDK runs against this version.
type DynamicRegistry interface {
	RegisterDynamicWorkflow(w any, options workflow.DynamicRegisterOptions)
}

// RegisterSDKWorkflow registers the workflow of SDK functions' runs on r, with no
// connections (replay executes no activity). SDK apps name invoked functions by their fully
// qualified ids, which is all the replay of an invoke needs.
func RegisterSDKWorkflow(r DynamicRegistry) {
	acts := &activities.Activities{Resolve: func(id string) (activities.FunctionInfo, bool) {
		return activities.FunctionInfo{Slug: id}, true
	}}
	r.RegisterDynamicWorkflow(sdkWorkflow(acts), workflow.DynamicRegisterOptions{})
}

// startSDKWorker runs the worker of SDK functions' runs: one dynamic workflow (the workflow
// type is the function's fully qualified id) whose steps call the apps, and Tempest's own
// workflows that run on a function's task queue (a named type is never the dynamic one's).
func (a *App) startSDKWorker() (worker.Worker, error) {
	w := worker.New(a.temporal, a.SDKTaskQueue(), a.opts.Worker)
	w.RegisterDynamicWorkflow(sdkWorkflow(a.acts), workflow.DynamicRegisterOptions{})
	w.RegisterWorkflowWithOptions(skippedRecordWorkflow, workflow.RegisterOptions{Name: skippedWorkflow})
	w.RegisterWorkflowWithOptions(a.cronTickWorkflow, workflow.RegisterOptions{Name: cronWorkflow})
	w.RegisterWorkflowWithOptions(a.replayWorkflow, workflow.RegisterOptions{Name: replayWorkflowType})
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start the SDK worker: %w", err)
	}
	return w, nil
}
