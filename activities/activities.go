// Package activities holds what Tempest runs do outside workflow code: the local
// activities of a run (system events, the wait index, singleton locks, throttle gates) as
// methods of one Activities value per app, what step bodies ask of Redis (cancel requests,
// concurrency leases), and the durable HTTP request of step.Fetch.
package activities

import (
	"context"
	"encoding/json"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/metrics"
	"github.com/tempestrun/tempest/internal/sdkhttp"
)

// Activities are a run's dependencies; its methods are the run's local activities (their
// names are recorded in run histories: keep them). One value per app, shared by its runs.
type Activities struct {
	// Redis holds cancel requests, singleton locks, throttle gates and concurrency leases.
	Redis redis.UniversalClient
	// Waits is the wait index of step.WaitForEvent and cancelOn rules.
	Waits *flowcontrol.Waits
	// Slots wakes steps waiting for a concurrency slot when one is released.
	Slots *flowcontrol.SlotWaker
	// Metrics counts waits and the concurrency leases held.
	Metrics *metrics.Metrics
	// Send accepts events a run sends, through the app's intake (validation, the event log,
	// fan-out); internal allows Tempest's reserved inngest/ names. ids derive from the run,
	// so a retried send is idempotent.
	Send func(ctx context.Context, events []json.RawMessage, ids []ulid.ULID, internal bool) ([]string, error)
	// Resolve finds the function step.Invoke names: its fully qualified id ("<app>-<fn>") or
	// its id in the app.
	Resolve func(id string) (FunctionInfo, bool)
	// CallApp calls the app that serves an SDK function (fnID, fully qualified) to run
	// stepID ("step": whatever comes next) and returns its outcome as JSON (CallOutcome);
	// answers that are failures come back as errors classified for the step's retries.
	CallApp func(ctx context.Context, fnID, stepID string, req sdkhttp.Request) (json.RawMessage, error)
}

// CallOutcome is what one call to an SDK app did: finished the run (Status 200, Data) or
// reported ops (206).
type CallOutcome struct {
	Status  int             `json:"status"`
	Data    json.RawMessage `json:"data,omitempty"`
	Ops     []sdkhttp.Op    `json:"ops,omitempty"`
	Version int             `json:"version,omitempty"`
}

// FunctionInfo is what a run needs to start another function's run.
type FunctionInfo struct {
	Slug      string
	TaskQueue string
	Retries   int
}

// SendEvents emits a run's system events (inngest/function.finished, .failed, .cancelled).
func (a *Activities) SendEvents(ctx context.Context, events []json.RawMessage, eventIDs []ulid.ULID) ([]string, error) {
	return a.Send(ctx, events, eventIDs, true)
}

// RegisterWaits indexes a run's waits (a step.WaitForEvent, or its cancelOn rules).
func (a *Activities) RegisterWaits(ctx context.Context, waits []flowcontrol.Wait) error {
	if err := a.Waits.Register(ctx, waits); err != nil {
		return err
	}
	for _, w := range waits { // cancelOn rules register twice (at ingest and in the run): not counted
		if w.Kind == flowcontrol.KindWait {
			a.Metrics.WaitsRegistered.Inc()
		}
	}
	return nil
}

// ClaimResult is the outcome of claiming one wait.
type ClaimResult struct {
	Outcome flowcontrol.ClaimOutcome `json:"outcome"`
	Prev    string                   `json:"prev,omitempty"`
}

// ClaimWait claims waits for the run itself (a timeout, or the run's end releasing its
// cancel rules); prev is the winner's value when an event got there first.
func (a *Activities) ClaimWait(ctx context.Context, waits []flowcontrol.Wait, value string) ([]ClaimResult, error) {
	out := make([]ClaimResult, len(waits))
	for i, w := range waits {
		n, prev, err := a.Waits.Claim(ctx, w, value)
		if err != nil {
			return nil, err
		}
		out[i] = ClaimResult{Outcome: n, Prev: prev}
	}
	return out, nil
}

// ReleaseSingleton frees the singleton lock of a run that ended.
func (a *Activities) ReleaseSingleton(ctx context.Context, key, runID string) error {
	return flowcontrol.ReleaseSingleton(ctx, a.Redis, key, runID)
}

// PassGate asks whether a throttled run may begin; it returns how long to wait first (0:
// begin now).
func (a *Activities) PassGate(ctx context.Context, g flowcontrol.Gate, runID string) (time.Duration, error) {
	return flowcontrol.PassGate(ctx, a.Redis, time.Now(), g, runID)
}

// CancelRequested tells a step about to start whether its run's cancellation was requested
// (a cancel request reaches workflow code only at its next workflow task, and steps that
// follow each other run within one). When Redis does not answer, the step runs.
func (a *Activities) CancelRequested(ctx context.Context, runID string) bool {
	n, err := a.Redis.Exists(ctx, flowcontrol.CancelKey(runID)).Result()
	return err == nil && n > 0
}

// AcquireLeases takes a step's concurrency leases, waiting up to hold for a released slot
// before it answers false; hold 0 renews leases already held (and is not counted again).
func (a *Activities) AcquireLeases(ctx context.Context, function string, leases []flowcontrol.Lease, leaseID, runID string, score float64, hold time.Duration) (bool, error) {
	acquire := func() (bool, error) {
		return flowcontrol.Acquire(ctx, a.Redis, time.Now(), leases, leaseID, runID, score)
	}
	if hold <= 0 {
		return acquire()
	}
	keys := make([]string, len(leases))
	for i, l := range leases {
		keys[i] = l.Key
	}
	ok, err := a.Slots.AcquireWaiting(ctx, keys, hold, acquire, func() bool { return a.CancelRequested(ctx, runID) })
	if ok && err == nil {
		a.Metrics.ConcurrencyLeases.WithLabelValues(function).Inc()
	}
	return ok, err
}

// ReleaseLeases gives back leases AcquireLeases took with a hold, and tells the steps
// waiting for them; a lost notice only delays a waiter to its next periodic ask.
func (a *Activities) ReleaseLeases(ctx context.Context, function string, leases []flowcontrol.Lease, leaseID string) error {
	a.Metrics.ConcurrencyLeases.WithLabelValues(function).Dec()
	if err := flowcontrol.Release(ctx, a.Redis, leases, leaseID); err != nil {
		return err
	}
	for _, l := range leases {
		_ = a.Slots.Notify(ctx, l.Key)
	}
	return nil
}
