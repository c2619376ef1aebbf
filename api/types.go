// Package api serves Tempest's HTTP endpoints with Inngest's paths and JSON shapes: the
// event API (POST /e/{key}), the REST API v1, /health and /ready. It knows nothing of Temporal or
// Redis: a Backend (adapter.App) does the work.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Backend is what the handlers need from the engine.
type Backend interface {
	// Ingest validates and accepts events; seed is the x-inngest-event-id-seed header.
	// A *InputError means the request is at fault (HTTP 400).
	Ingest(ctx context.Context, seed string, events []json.RawMessage) ([]string, error)
	Event(ctx context.Context, id string) (*Event, error)
	// Events lists events newest first.
	Events(ctx context.Context, q EventQuery) ([]Event, error)
	EventRuns(ctx context.Context, id string) ([]FunctionRun, error)
	Run(ctx context.Context, id string) (*FunctionRun, error)
	CancelRun(ctx context.Context, id string) error
	// CancelRuns cancels the running runs of a function started in a time range (and
	// matching If, CEL over `event`). An unknown function is ErrNotFound; a bad If is an
	// *InputError.
	CancelRuns(ctx context.Context, req CancellationRequest) (*Cancellation, error)
	// Ready checks each service the engine needs (GET /ready) within ctx.
	Ready(ctx context.Context) []Check
	// Apps lists the apps of the environment as the registry holds them.
	Apps(ctx context.Context) ([]AppSummary, error)
	// DescribeApp is one app and the workers seen on its task queue; ErrAppNotFound if
	// the registry does not hold it.
	DescribeApp(ctx context.Context, app string) (*AppDetail, error)
	// AppFunctions lists an app's functions; ErrAppNotFound for an unknown app.
	AppFunctions(ctx context.Context, app string) ([]FunctionInfo, error)
	// DescribeFunction is one function of an app (fn: its id within the app, or the fully
	// qualified id) and the workers seen; ErrAppNotFound or ErrNotFound.
	DescribeFunction(ctx context.Context, app, fn string) (*FunctionDetail, error)
	// RemoveApp deletes a retired app's registry entry (its functions stop receiving
	// events); ErrAppNotFound for an unknown app.
	RemoveApp(ctx context.Context, app string) error
	// ListRuns is one page of runs (GET /v2/runs); an unknown app is ErrAppNotFound, an
	// unknown function ErrNotFound, a bad If an *InputError.
	ListRuns(ctx context.Context, q RunQuery) (*RunPage, error)
	// RunV2 is a run in the v2 shape, with its output.
	RunV2(ctx context.Context, id string) (*RunV2, error)
	// EventRunsV2 are the runs an event started, in the v2 shape.
	EventRunsV2(ctx context.Context, id string) ([]RunV2, error)
	// RunTrace is a run with its step timeline (step outputs with withOutput).
	RunTrace(ctx context.Context, id string, withOutput bool) (*RunTrace, error)
	// Rerun starts a new run of a run's function with its events (*InputError: a step id
	// the run does not have, or a function no longer registered).
	Rerun(ctx context.Context, id string, req RerunRequest) (*Rerun, error)
	// PauseFunction pauses a function; ResumeFunction resumes it and, with replay, starts
	// the runs of the events it received while paused.
	PauseFunction(ctx context.Context, app, fn string) (*FunctionDetail, error)
	ResumeFunction(ctx context.Context, app, fn string, replay bool) (*Resumed, error)
	// StartReplay starts a bulk replay (a validated request); Replay reads one's progress
	// and CancelReplay stops it (the runs it started go on).
	StartReplay(ctx context.Context, req ReplayRequest) (*Replay, error)
	Replay(ctx context.Context, id string) (*Replay, error)
	CancelReplay(ctx context.Context, id string) (*Replay, error)
	// RegisterSDKApp registers the functions an Inngest SDK app syncs (POST /fn/register);
	// an error wrapping sdkhttp.ErrInvalid is the app's to fix (400).
	RegisterSDKApp(ctx context.Context, body []byte) (*SyncResult, error)
	// SyncSDKApp asks the app served at url to sync; ErrAppUnreachable if it does not answer.
	SyncSDKApp(ctx context.Context, url string) (*SyncResult, error)
	// SDKAppURL is the serve URL of a synced SDK app; ErrAppNotFound if there is none.
	SDKAppURL(ctx context.Context, app string) (string, error)
	// Checkpoint stores steps an app finished during a call (ErrStaleCheckpoint: the call
	// attempt is no longer in flight; ErrTooLarge; *InputError).
	Checkpoint(ctx context.Context, runID string, body []byte) error
	// CallState is what the run's last call sent with use_api left out: part "actions" (its
	// memoized steps) or "batch" (its events); ErrNotFound without one.
	CallState(ctx context.Context, runID, part string) (json.RawMessage, error)
}

// Check is whether one service answered: Err is nil when it did.
type Check struct {
	Name string
	Err  error
}

// ErrNotFound is returned by a Backend for an unknown event or run.
var ErrNotFound = errors.New("not found")

// ErrAppNotFound is ErrNotFound for an app, so that a 404 can say which was missing.
var ErrAppNotFound = fmt.Errorf("app %w", ErrNotFound)

// ErrRunFinished is returned when cancelling a run that has already ended.
var ErrRunFinished = errors.New("this function run has already finished")

// InputError is a request the client must fix.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// Run statuses as Inngest names them.
const (
	StatusRunning   = "Running"
	StatusCompleted = "Completed"
	StatusFailed    = "Failed"
	StatusCancelled = "Cancelled"
	// StatusSkipped is a run that never started (a singleton's key was held).
	StatusSkipped = "Skipped"
	// StatusScheduled is a run waiting for its start time (throttled); see StartAt.
	StatusScheduled = "Scheduled"
)

// FunctionRun is Inngest's REST run shape.
type FunctionRun struct {
	RunID        string     `json:"run_id"`
	RunStartedAt time.Time  `json:"run_started_at"`
	FunctionID   string     `json:"function_id"`
	EventID      string     `json:"event_id"`
	Status       string     `json:"status"`
	EndedAt      *time.Time `json:"ended_at"`
	// StartAt is when a Scheduled run will start.
	StartAt *time.Time      `json:"start_at,omitempty"`
	Output  json.RawMessage `json:"output,omitempty"`
}

// Event is Inngest's REST event shape.
type Event struct {
	InternalID string          `json:"internal_id"`
	ReceivedAt time.Time       `json:"received_at"`
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Data       json.RawMessage `json:"data"`
	User       json.RawMessage `json:"user,omitempty"`
	TS         int64           `json:"ts"`
	V          string          `json:"v,omitempty"`
	// Runs are the ids of the runs the event started (for a debounced or batched event, its
	// buffer's run); empty until it is dispatched.
	Runs []string `json:"runs"`
	// Reason says why a dispatched event started no run: "no matching function", "rate
	// limited", "deduplicated by idempotency key", "duplicate".
	Reason string `json:"reason,omitempty"`
	// DispatchedAt is when its runs were started; absent while it waits in the log.
	DispatchedAt *time.Time `json:"dispatched_at,omitempty"`
}

// EventQuery filters GET /v1/events.
type EventQuery struct {
	Name                          string
	ReceivedAfter, ReceivedBefore time.Time // zero: unbounded
	Cursor                        string    // an internal id: events older than it
	Limit                         int
}

// CancellationRequest is the body of POST /v1/cancellations.
type CancellationRequest struct {
	AppID         string     `json:"app_id"`
	FunctionID    string     `json:"function_id"`
	StartedAfter  *time.Time `json:"started_after"`
	StartedBefore *time.Time `json:"started_before"`
	If            string     `json:"if,omitempty"`
}

// Cancellation is what a bulk cancellation did.
type Cancellation struct {
	ID            string     `json:"id"`
	CreatedAt     time.Time  `json:"created_at"`
	AppID         string     `json:"app_id"`
	FunctionID    string     `json:"function_id"`
	StartedAfter  *time.Time `json:"started_after"`
	StartedBefore time.Time  `json:"started_before"`
	If            string     `json:"if,omitempty"`
	// Cancelled counts the runs that were cancelled.
	Cancelled int `json:"cancelled"`
}

// AppSummary is an app of the environment (GET /v2/apps): its registry entry.
type AppSummary struct {
	ID        string `json:"id"`
	TaskQueue string `json:"task_queue"`
	// SyncedAt is the app's last publish (its worker's last start).
	SyncedAt      time.Time `json:"synced_at"`
	Version       string    `json:"version"`
	FunctionCount int       `json:"function_count"`
	// URL and SDK are an Inngest SDK app's serve URL and SDK ("js:v4.24.0"); SyncedAt is then
	// its last sync that changed something.
	URL string `json:"url,omitempty"`
	SDK string `json:"sdk,omitempty"`
}

// AppDetail is one app (GET /v2/apps/{app}).
type AppDetail struct {
	AppSummary
	Workers []Worker `json:"workers"`
}

// Worker is a poller Temporal saw on a task queue (it remembers them for a few minutes, so
// a worker that just stopped is still listed, with its last access time).
type Worker struct {
	Identity       string    `json:"identity"`
	LastAccessTime time.Time `json:"last_access_time"`
}

// FunctionInfo is a function as its app published it (GET /v2/apps/{app}/functions).
type FunctionInfo struct {
	// ID is the fully qualified id, "<app id>-<function id>" (Inngest's slug).
	ID         string `json:"id"`
	FunctionID string `json:"function_id"`
	Name       string `json:"name"`
	AppID      string `json:"app_id"`
	Version    string `json:"version"`
	// SyncedAt is the app's last publish.
	SyncedAt time.Time `json:"synced_at"`
	// Config is the whole configuration in the shape the SDKs sync (camelCase): triggers,
	// retries, flow control, cancel, timeouts, singleton, version.
	Config json.RawMessage `json:"config"`
	// Paused is set while the function is paused (since PausedAt): its events are stored
	// and start no runs.
	Paused   bool       `json:"paused"`
	PausedAt *time.Time `json:"paused_at,omitempty"`
}

// FunctionDetail is one function (GET /v2/apps/{app}/functions/{fn}).
type FunctionDetail struct {
	FunctionInfo
	Workers []Worker `json:"workers"`
}
