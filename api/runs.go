package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// The v2 runs surface: Inngest's v2 FunctionRun shape and its list parameters. Runs are
// listed from Temporal's visibility, so a run appears in lists a moment after it starts
// (visibility is written asynchronously); GET /v2/runs/{id} reads the run itself.

// Run statuses of the v2 surface (upper case, as Inngest's v2 API spells them). QUEUED is
// a run waiting for its start time (a throttled or delayed run, Tempest's v1 "Scheduled");
// a run whose first step waits for a worker is RUNNING, as Temporal cannot tell the two
// apart. SKIPPED is a run a singleton skipped.
const (
	V2Queued    = "QUEUED"
	V2Running   = "RUNNING"
	V2Completed = "COMPLETED"
	V2Failed    = "FAILED"
	V2Cancelled = "CANCELLED"
	V2Skipped   = "SKIPPED"
	// V2Scheduled is accepted as a filter for QUEUED (Tempest's v1 name).
	V2Scheduled = "SCHEDULED"
)

// The time a list filters and orders by (RunQuery.TimeField).
const (
	TimeQueued  = "queuedAt"  // when the run was created (the event dispatched)
	TimeStarted = "startedAt" // when it was due to start (later than queuedAt when throttled)
	TimeEnded   = "endedAt"   // when it ended: lists only ended runs
)

// Limits of the run lists.
const (
	DefaultRunsLimit = 20
	MaxRunsLimit     = 100
)

// RunV2 is a run in Inngest's v2 shape.
type RunV2 struct {
	ID       string     `json:"id"`
	Function RunFunc    `json:"function"`
	App      RunApp     `json:"app"`
	Status   string     `json:"status"`
	QueuedAt time.Time  `json:"queued_at"`
	StartAt  *time.Time `json:"started_at,omitempty"`
	EndedAt  *time.Time `json:"ended_at,omitempty"`
	// DurationMS is from start to end, for an ended run.
	DurationMS *int64     `json:"duration_ms,omitempty"`
	Trigger    RunTrigger `json:"trigger"`
	// Output is the function's result, or {"error": {...}}, with include_output.
	Output json.RawMessage `json:"output,omitempty"`
	// RerunOf is the run this one reruns (a rerun or a replayed run); Reruns lists this
	// run's reruns (GET /v2/runs/{id} only, as visibility has them).
	RerunOf string   `json:"rerun_of,omitempty"`
	Reruns  []string `json:"reruns,omitempty"`
	// TraceID is the run's OpenTelemetry trace (tracing on).
	TraceID string `json:"trace_id,omitempty"`
}

// RunFunc names a run's function (its fully qualified id, "<app>-<fn>").
type RunFunc struct {
	ID string `json:"id"`
}

// RunApp names a run's app ("" when the registry no longer holds its function).
type RunApp struct {
	ID string `json:"id"`
}

// RunTrigger is the event that started the run.
type RunTrigger struct {
	EventID   string `json:"event_id,omitempty"`
	EventName string `json:"event_name,omitempty"`
}

// RunQuery selects and orders the runs of a list.
type RunQuery struct {
	// Statuses keeps runs in any of these (V2 names; empty: all).
	Statuses []string
	// AppID and FunctionID narrow the list (FunctionID: the id within the app, or fully
	// qualified; with AppID "" it must be fully qualified).
	AppID, FunctionID string
	// From (inclusive) and Until (exclusive) bound TimeField; zero: unbounded.
	From, Until time.Time
	TimeField   string
	// Desc: newest first (the default).
	Desc bool
	// Limit is 1..MaxRunsLimit.
	Limit int
	// Cursor is the page.cursor of the previous page ("" first page).
	Cursor        string
	IncludeOutput bool
	// If is a CEL condition over the triggering event (`event`).
	If string
}

// RunPage is one page of runs; Cursor continues it while HasMore.
type RunPage struct {
	Runs    []RunV2
	Cursor  string
	HasMore bool
}

// RunCursor is the position a page ended at, opaque to clients.
type RunCursor struct {
	At time.Time `json:"t"`
	ID string    `json:"id"`
	// Q identifies the query the cursor belongs to (a cursor of another query is a 400).
	Q string `json:"q"`
}

// Encode is the cursor as clients see it.
func (c RunCursor) Encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeRunCursor reads a page.cursor; an error says what to send instead.
func DecodeRunCursor(s string) (RunCursor, error) {
	var c RunCursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.At.IsZero() {
		return c, fmt.Errorf("cursor %q is not a page.cursor of this list: send the one the previous page returned", s)
	}
	return c, nil
}

// Key identifies the query's filters and order (not its page or limit), for cursors.
func (q RunQuery) Key() string {
	st := slices.Clone(q.Statuses)
	slices.Sort(st)
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s|%v|%s", strings.Join(st, ","), q.AppID, q.FunctionID,
		q.From.UTC().Format(time.RFC3339Nano), q.Until.UTC().Format(time.RFC3339Nano), q.TimeField, q.Desc, q.If)
}

// runQuery parses the v2 list parameters; app and fn come from the path when given.
func runQuery(c *gin.Context, app, fn string) (RunQuery, error) {
	q := RunQuery{AppID: app, FunctionID: fn, Limit: DefaultRunsLimit, TimeField: TimeQueued, Desc: true, Cursor: c.Query("cursor"), If: c.Query("if")}
	if q.AppID == "" {
		q.AppID = c.Query("app_id")
	}
	if q.FunctionID == "" {
		q.FunctionID = c.Query("function_id")
	}
	var problems []string
	for _, s := range c.QueryArray("status") {
		for _, one := range strings.Split(s, ",") {
			switch u := strings.ToUpper(strings.TrimSpace(one)); u {
			case V2Queued, V2Scheduled:
				q.Statuses = append(q.Statuses, V2Queued)
			case V2Running, V2Completed, V2Failed, V2Cancelled, V2Skipped:
				q.Statuses = append(q.Statuses, u)
			default:
				problems = append(problems, fmt.Sprintf("status %q: use QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, SCHEDULED or SKIPPED", one))
			}
		}
	}
	slices.Sort(q.Statuses)
	q.Statuses = slices.Compact(q.Statuses)
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxRunsLimit {
			problems = append(problems, fmt.Sprintf("limit %q: use a whole number from 1 to %d", v, MaxRunsLimit))
		}
		q.Limit = n
	}
	switch v := c.Query("time_field"); v {
	case "", TimeQueued:
	case TimeStarted, TimeEnded:
		q.TimeField = v
	default:
		problems = append(problems, fmt.Sprintf("time_field %q: use queuedAt, startedAt or endedAt", v))
	}
	switch v := strings.ToUpper(c.Query("order")); v {
	case "", "DESC":
	case "ASC":
		q.Desc = false
	default:
		problems = append(problems, fmt.Sprintf("order %q: use ASC or DESC", c.Query("order")))
	}
	for _, b := range []struct {
		param string
		t     *time.Time
	}{{"from", &q.From}, {"until", &q.Until}} {
		if v := c.Query(b.param); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s %q: use an RFC 3339 time, like 2026-01-02T15:04:05Z", b.param, v))
			}
			*b.t = t
		}
	}
	if !q.From.IsZero() && !q.Until.IsZero() && !q.From.Before(q.Until) {
		problems = append(problems, "from must be before until")
	}
	if v := c.Query("include_output"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("include_output %q: use true or false", v))
		}
		q.IncludeOutput = b
	}
	if q.Cursor != "" {
		if cur, err := DecodeRunCursor(q.Cursor); err != nil {
			problems = append(problems, err.Error())
		} else if cur.Q != q.Key() {
			problems = append(problems, "cursor belongs to a list with other filters or order: send the same parameters as the page it came from, or no cursor")
		}
	}
	if len(problems) > 0 {
		return q, errors.New(strings.Join(problems, "; "))
	}
	return q, nil
}

// listRuns serves GET /v2/runs and GET /v2/apps/{app}/functions/{fn}/runs.
func (h *handlers) listRuns(c *gin.Context) {
	q, err := runQuery(c, c.Param("app"), c.Param("fn"))
	if err != nil {
		publicErr(c, 400, err.Error())
		return
	}
	page, err := h.b.ListRuns(c.Request.Context(), q)
	var inErr *InputError
	if errors.As(err, &inErr) {
		publicErr(c, 400, inErr.Msg)
		return
	}
	if errors.Is(err, ErrAppNotFound) {
		publicErr(c, 404, "app not found")
		return
	}
	if h.fail(c, err, "function not found") {
		return
	}
	runs := page.Runs
	if runs == nil {
		runs = []RunV2{}
	}
	c.JSON(200, gin.H{
		"data":     runs,
		"page":     gin.H{"cursor": page.Cursor, "hasMore": page.HasMore, "limit": q.Limit},
		"metadata": gin.H{"fetched_at": time.Now().UTC().Format(time.RFC3339Nano)},
	})
}

// getRunV2 serves GET /v2/runs/{id}: the run with its output.
func (h *handlers) getRunV2(c *gin.Context) {
	id, ok := ulidParam(c)
	if !ok {
		return
	}
	run, err := h.b.RunV2(c.Request.Context(), id)
	if h.fail(c, err, "Function run not found") {
		return
	}
	ok200(c, run)
}

// getRunTrace serves GET /v2/runs/{id}/trace: the run and its step timeline.
func (h *handlers) getRunTrace(c *gin.Context) {
	id, ok := ulidParam(c)
	if !ok {
		return
	}
	var withOutput bool
	if v := c.Query("include_output"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			publicErr(c, 400, fmt.Sprintf("include_output %q: use true or false", v))
			return
		}
		withOutput = b
	}
	tr, err := h.b.RunTrace(c.Request.Context(), id, withOutput)
	if h.fail(c, err, "Function run not found") {
		return
	}
	ok200(c, tr)
}

// rerun serves POST /v2/runs/{id}/rerun: a new run of the same function with the same
// events, from the start or from a step.
func (h *handlers) rerun(c *gin.Context) {
	id, ok := ulidParam(c)
	if !ok {
		return
	}
	var req RerunRequest
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 1<<20))
	if err != nil {
		publicErr(c, 400, "Invalid request body: "+err.Error())
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			publicErr(c, 400, "Invalid request body: "+err.Error()+` (send {} or {"from_step": {"step_id": "...", "input": ...}})`)
			return
		}
	}
	if req.FromStep != nil && req.FromStep.StepID == "" {
		publicErr(c, 400, "from_step.step_id is required: the id of a step of the original run (GET /v2/runs/{id}/trace lists them)")
		return
	}
	if req.FromStep != nil && req.FromStep.Input != nil && !json.Valid(req.FromStep.Input) {
		publicErr(c, 400, "from_step.input is not JSON")
		return
	}
	out, err := h.b.Rerun(c.Request.Context(), id, req)
	if h.fail(c, err, "Function run not found") {
		return
	}
	ok200(c, out)
}

// getEventRunsV2 serves GET /v2/events/{id}/runs.
func (h *handlers) getEventRunsV2(c *gin.Context) {
	id, ok := ulidParam(c)
	if !ok {
		return
	}
	runs, err := h.b.EventRunsV2(c.Request.Context(), id)
	if h.fail(c, err, "Event not found") {
		return
	}
	if runs == nil {
		runs = []RunV2{}
	}
	ok200(c, runs)
}
