package api

import (
	"encoding/json"
	"time"
)

// RunTrace is a run with its step timeline, as GET /v2/runs/{id}/trace serves it.
type RunTrace struct {
	Run   RunV2       `json:"run"`
	Steps []TraceStep `json:"steps"`
}

// Kinds of a TraceStep.
const (
	StepRun    = "step.run" // step.Run, step.SendEvent, step.Fetch: one or more attempts
	StepSleep  = "step.sleep"
	StepWait   = "step.waitForEvent"
	StepInvoke = "step.invoke"
	// StepRetry is a wait before the function body is called again after it failed
	// outside any step.
	StepRetry = "function.retry"
)

// Outcomes of a TraceStep or a TraceAttempt; a running step has none yet.
const (
	StepCompleted = "COMPLETED"
	StepFailed    = "FAILED"
	StepRunning   = "RUNNING"
	// StepTimedOut is a wait for an event that ended without one.
	StepTimedOut  = "TIMED_OUT"
	StepCancelled = "CANCELLED"
)

// TraceStep is one step of a run, in the order the run first reached it.
type TraceStep struct {
	ID        string     `json:"step_id"`
	Kind      string     `json:"kind"`
	Status    string     `json:"status"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// Attempts of a step.run, in order; a retried step has more than one.
	Attempts []TraceAttempt `json:"attempts,omitempty"`
	// Error is why the step failed (its last attempt's error).
	Error *StepErrorInfo `json:"error,omitempty"`
	// Output is the step's result (for a wait, the event received; for an invoke, the
	// invoked run's result), with include_output.
	Output json.RawMessage `json:"output,omitempty"`
	// Event and Timeout describe a wait; Until a sleep's end.
	Event   string     `json:"event,omitempty"`
	Timeout string     `json:"timeout,omitempty"`
	Until   *time.Time `json:"until,omitempty"`
	// FunctionID and RunID name an invoked run.
	FunctionID string `json:"function_id,omitempty"`
	RunID      string `json:"run_id,omitempty"`
}

// TraceAttempt is one attempt of a step.run.
type TraceAttempt struct {
	Attempt   int            `json:"attempt"` // 0-based
	Status    string         `json:"status"`
	StartedAt time.Time      `json:"started_at"`
	EndedAt   time.Time      `json:"ended_at"`
	Error     *StepErrorInfo `json:"error,omitempty"`
	// RetryAt is when the next attempt was due, for a failed attempt that was retried.
	RetryAt *time.Time      `json:"retry_at,omitempty"`
	Output  json.RawMessage `json:"output,omitempty"`
}

// StepErrorInfo is a step's error as Inngest shows it.
type StepErrorInfo struct {
	Name    string `json:"name"`
	Message string `json:"message"`
}

// RerunRequest is the body of POST /v2/runs/{id}/rerun (all optional).
type RerunRequest struct {
	// FromStep reruns from this step: the original's steps before it are not executed
	// again, their recorded results are reused.
	FromStep *RerunFrom `json:"from_step,omitempty"`
}

// RerunFrom names the step a rerun starts from and, optionally, the input its body reads
// (step.Input).
type RerunFrom struct {
	StepID string          `json:"step_id"`
	Input  json.RawMessage `json:"input,omitempty"`
}

// Rerun is the answer to a rerun: the new run, linked to the original.
type Rerun struct {
	RunID   string `json:"run_id"`
	RerunOf string `json:"rerun_of"`
	// Reused lists the steps whose recorded results the new run reuses.
	Reused []string `json:"reused_steps"`
}
