package api

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Limits of a bulk replay.
const (
	// DefaultReplayRate is how many runs a replay starts per second unless told.
	DefaultReplayRate = 10.0
	// MaxReplayRate bounds rate (runs per second).
	MaxReplayRate = 1000.0
	// MaxReplayRuns is the most runs one replay replays: narrow from/until for more.
	MaxReplayRuns = 10000
)

// ReplayRequest is the body of POST /v1/replays: replay the runs of a function that
// started (were queued) in [From, Until] and ended in one of Statuses.
type ReplayRequest struct {
	AppID      string     `json:"app_id"`
	FunctionID string     `json:"function_id"`
	Name       string     `json:"name,omitempty"`
	From       *time.Time `json:"from"`
	Until      *time.Time `json:"until"`
	// Statuses of the runs to replay: FAILED, CANCELLED, COMPLETED (default FAILED).
	Statuses []string `json:"statuses,omitempty"`
	// If is CEL over the run's triggering `event`; only matching runs are replayed.
	If string `json:"if,omitempty"`
	// Rate is runs started per second (default DefaultReplayRate, at most MaxReplayRate).
	Rate float64 `json:"rate,omitempty"`
}

// Replay states.
const (
	ReplayRunning   = "RUNNING"
	ReplayCompleted = "COMPLETED"
	ReplayCancelled = "CANCELLED"
	ReplayFailed    = "FAILED"
)

// Replay is a bulk replay and its progress.
type Replay struct {
	ID         string     `json:"id"`
	Name       string     `json:"name,omitempty"`
	AppID      string     `json:"app_id"`
	FunctionID string     `json:"function_id"`
	From       time.Time  `json:"from"`
	Until      time.Time  `json:"until"`
	Statuses   []string   `json:"statuses"`
	If         string     `json:"if,omitempty"`
	Rate       float64    `json:"rate"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	EndedAt    *time.Time `json:"ended_at,omitempty"`
	// Matched is how many runs the replay found (null until it has listed them); Started
	// how many replayed runs it started; Skipped how many it could not replay (Errors says
	// why, for the first few).
	Matched *int     `json:"matched"`
	Started int      `json:"started"`
	Skipped int      `json:"skipped"`
	Errors  []string `json:"errors,omitempty"`
	// Runs counts the replayed runs by their status now (as visibility has them).
	Runs ReplayRuns `json:"runs"`
	// Error is why the replay itself failed.
	Error string `json:"error,omitempty"`
}

// ReplayRuns counts a replay's runs by status (running includes runs waiting for their
// throttle slot).
type ReplayRuns struct {
	Running   int `json:"running"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	Cancelled int `json:"cancelled"`
}

// Validate checks a replay request and fills in its defaults.
func (r *ReplayRequest) Validate(now time.Time) error {
	var problems []string
	if r.AppID == "" {
		problems = append(problems, "app_id is required")
	}
	if r.FunctionID == "" {
		problems = append(problems, "function_id is required")
	}
	switch {
	case r.From == nil || r.Until == nil:
		problems = append(problems, "from and until are required (RFC 3339 times: the runs queued between them are replayed)")
	case !r.From.Before(*r.Until):
		problems = append(problems, "from must be before until")
	case r.Until.After(now.Add(5 * time.Second)):
		problems = append(problems, "until must not be in the future")
	}
	if len(r.Statuses) == 0 {
		r.Statuses = []string{V2Failed}
	}
	for i, s := range r.Statuses {
		r.Statuses[i] = strings.ToUpper(s)
		if !slices.Contains([]string{V2Failed, V2Cancelled, V2Completed}, r.Statuses[i]) {
			problems = append(problems, fmt.Sprintf("status %q: use FAILED, CANCELLED or COMPLETED (runs that ended)", s))
		}
	}
	slices.Sort(r.Statuses)
	r.Statuses = slices.Compact(r.Statuses)
	if r.Rate == 0 {
		r.Rate = DefaultReplayRate
	}
	if math.IsNaN(r.Rate) || r.Rate < 0.01 || r.Rate > MaxReplayRate {
		problems = append(problems, fmt.Sprintf("rate %v: use 0.01 to %v runs per second", r.Rate, MaxReplayRate))
	}
	if len(r.Name) > 256 {
		problems = append(problems, "name is longer than 256 characters")
	}
	if len(problems) > 0 {
		return &InputError{Msg: strings.Join(problems, "; ")}
	}
	return nil
}

func (h *handlers) startReplay(c *gin.Context) {
	var req ReplayRequest
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, 1<<20)
	if err := c.ShouldBindJSON(&req); err != nil {
		publicErr(c, 400, "Invalid request body: "+err.Error())
		return
	}
	if err := req.Validate(time.Now()); err != nil {
		h.fail(c, err, "")
		return
	}
	out, err := h.b.StartReplay(c.Request.Context(), req)
	if h.fail(c, err, "function not found") {
		return
	}
	ok200(c, out)
}

func (h *handlers) getReplay(c *gin.Context) {
	id, ok := ulidParam(c)
	if !ok {
		return
	}
	out, err := h.b.Replay(c.Request.Context(), id)
	if h.fail(c, err, "replay not found") {
		return
	}
	ok200(c, out)
}

func (h *handlers) cancelReplay(c *gin.Context) {
	id, ok := ulidParam(c)
	if !ok {
		return
	}
	out, err := h.b.CancelReplay(c.Request.Context(), id)
	if h.fail(c, err, "replay not found") {
		return
	}
	ok200(c, out)
}
