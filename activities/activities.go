// Package activities holds the activity entry points of Tempest runs that are not user
// steps (system events, wait registration and claims) and the durable HTTP request.
package activities

import (
	"context"
	"encoding/json"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tempestrun/tempest/flowcontrol"
)

// Sender accepts events sent by runs. internal allows Tempest's reserved inngest/ names.
// eventIDs are derived by the workflow, so a retried send is idempotent.
type Sender interface {
	SendEvents(ctx context.Context, events []json.RawMessage, eventIDs []ulid.ULID, internal bool) ([]string, error)
}

// SendEvents is the local-activity entry point that emits a run's system events
// (inngest/function.finished, .failed, .cancelled). Its recorded type is "SendEvents".
func SendEvents(ctx context.Context, s Sender, events []json.RawMessage, eventIDs []ulid.ULID) ([]string, error) {
	return s.SendEvents(ctx, events, eventIDs, true)
}

// Waiter registers and claims waits (flowcontrol.Waits behind the app).
type Waiter interface {
	RegisterWaits(ctx context.Context, waits []flowcontrol.Wait) error
	ClaimWait(ctx context.Context, w flowcontrol.Wait, value string) (outcome int, prev string, err error)
}

// RegisterWaits is the local-activity entry point that indexes a run's waits in Redis.
func RegisterWaits(ctx context.Context, w Waiter, waits []flowcontrol.Wait) error {
	return w.RegisterWaits(ctx, waits)
}

// ClaimResult is the outcome of ClaimWait.
type ClaimResult struct {
	Outcome int    `json:"outcome"` // flowcontrol.Claimed, AlreadyClaimed or Gone
	Prev    string `json:"prev,omitempty"`
}

// ClaimWait is the local-activity entry point that claims waits for the run itself (a
// timeout, or the run's end releasing its cancel rules); prev is the winner's value when
// an event got there first.
func ClaimWait(ctx context.Context, w Waiter, waits []flowcontrol.Wait, value string) ([]ClaimResult, error) {
	out := make([]ClaimResult, len(waits))
	for i, wt := range waits {
		n, prev, err := w.ClaimWait(ctx, wt, value)
		if err != nil {
			return nil, err
		}
		out[i] = ClaimResult{Outcome: n, Prev: prev}
	}
	return out, nil
}

// Locker releases the singleton lock of a run that ended.
type Locker interface {
	ReleaseSingleton(ctx context.Context, key, runID string) error
}

// ReleaseSingleton is the local-activity entry point that frees a run's singleton lock.
func ReleaseSingleton(ctx context.Context, l Locker, key, runID string) error {
	return l.ReleaseSingleton(ctx, key, runID)
}

// Canceller tells whether a run's cancellation was requested. Steps check it before they
// start: a cancel request reaches workflow code only at its next workflow task, and steps
// that follow each other run within one.
type Canceller interface {
	CancelRequested(ctx context.Context, runID string) bool
}

// Limiter holds concurrency leases for steps (flowcontrol.Acquire behind the app) and
// checks a run's throttle where it begins (flowcontrol.PassGate).
type Limiter interface {
	// AcquireLeases waits up to hold for a released slot before it answers false; hold 0
	// renews leases already held.
	AcquireLeases(ctx context.Context, function string, leases []flowcontrol.Lease, leaseID, runID string, score float64, hold time.Duration) (bool, error)
	// ReleaseLeases gives back leases AcquireLeases took with a hold.
	ReleaseLeases(ctx context.Context, function string, leases []flowcontrol.Lease, leaseID string) error
	PassGate(ctx context.Context, g flowcontrol.Gate, runID string) (time.Duration, error)
}

// PassGate is the local-activity entry point that asks whether a throttled run may begin;
// it returns how long to wait first (0: begin now).
func PassGate(ctx context.Context, l Limiter, g flowcontrol.Gate, runID string) (time.Duration, error) {
	return l.PassGate(ctx, g, runID)
}
