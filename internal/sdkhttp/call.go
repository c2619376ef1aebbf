package sdkhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Request is the body of a call to an app: run the function with these events and
// memoized steps, and answer with what it did.
type Request struct {
	Event  json.RawMessage            `json:"event"`
	Events []json.RawMessage          `json:"events"`
	Steps  map[string]json.RawMessage `json:"steps"`
	Defers map[string]any             `json:"defers"`
	Ctx    Context                    `json:"ctx"`
	// Version is the execution version the app reported (-1 until it has).
	Version int  `json:"version"`
	UseAPI  bool `json:"use_api"`
}

// Context is the request's ctx.
type Context struct {
	RunID       string `json:"run_id"`
	Attempt     int    `json:"attempt"`
	MaxAttempts int    `json:"max_attempts"`
	Stack       Stack  `json:"stack"`
	// DisableImmediateExecution makes the SDK plan every step instead of running one
	// inline (while parallel steps are outstanding).
	DisableImmediateExecution bool   `json:"disable_immediate_execution"`
	UseAPI                    bool   `json:"use_api"`
	Env                       string `json:"env"`
	StepID                    string `json:"step_id"`
	// FnID and QIID turn on checkpointing in the JS SDK (both or neither).
	FnID         string `json:"fn_id,omitempty"`
	QIID         string `json:"qi_id,omitempty"`
	RequestID    string `json:"request_id,omitempty"`
	GenerationID int    `json:"generation_id"`
}

// Stack lists the memoized steps' hashed ids in the order they completed.
type Stack struct {
	Stack   []string `json:"stack"`
	Current int      `json:"current"`
}

// MaxRequestBody is the largest call body sent to an app, as Inngest's: above it the call
// carries no steps and events and says use_api, and the app reads them from the server.
const MaxRequestBody = 4 << 20

// NewCall builds the signed POST of a call: fnId and stepId ("step": run whatever comes
// next; a hashed id: run that planned step) on the function's URL, the body in canonical
// form. signingKey "" sends no signature (dev).
func NewCall(ctx context.Context, fnURL, fnID, stepID string, req Request, signingKey string, now time.Time) (*http.Request, error) {
	u, err := url.Parse(fnURL)
	if err != nil {
		return nil, fmt.Errorf("function URL %q: %w", fnURL, err)
	}
	q := u.Query()
	q.Set("fnId", fnID)
	q.Set("stepId", stepID)
	u.RawQuery = q.Encode()
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	body, err := Canonical(raw)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	// Marks the call as safe to send again (net/http does, on a new connection, when a
	// kept-alive one turns out closed by the app's server): a call is delivered at least
	// once in any case, and its retry would send the same. A nil value is not sent.
	hr.Header["Idempotency-Key"] = nil
	hr.Header.Set("X-Run-ID", req.Ctx.RunID)
	hr.Header.Set("X-Inngest-Step-ID", stepID)
	hr.Header.Set("x-inngest-req-version", strconv.Itoa(req.Version))
	if req.Ctx.RequestID != "" {
		hr.Header.Set("x-request-id", req.Ctx.RequestID)
	}
	hr.Header.Set("x-inngest-generation-id", strconv.Itoa(req.Ctx.GenerationID))
	if signingKey != "" {
		hr.Header.Set("X-Inngest-Signature", Sign(body, signingKey, now))
	}
	return hr, nil
}

// Op is one operation an app reports in a 206 answer.
type Op struct {
	Op          string          `json:"op"`
	ID          string          `json:"id"`
	Name        string          `json:"name,omitempty"`
	DisplayName string          `json:"displayName,omitempty"`
	Opts        json.RawMessage `json:"opts,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	Error       json.RawMessage `json:"error,omitempty"`
	Userland    *struct {
		ID string `json:"id"`
	} `json:"userland,omitempty"`
	// Timing is when the app ran the step: A its start (unix ns), B its duration (ns).
	Timing *struct {
		A int64 `json:"a"`
		B int64 `json:"b"`
	} `json:"timing,omitempty"`
}

// Label is the step's name for people: its display name, else the id the user gave it.
func (o Op) Label() string {
	switch {
	case o.DisplayName != "":
		return o.DisplayName
	case o.Userland != nil && o.Userland.ID != "":
		return o.Userland.ID
	case o.Name != "":
		return o.Name
	}
	return o.ID
}

// Memo is what the SDK is sent back for a step this op finished ({"data"} of a StepRun,
// the raw value of a legacy Step, {"error"} of a StepFailed); false for other ops.
func (o Op) Memo() (json.RawMessage, bool) {
	switch o.Op {
	case OpStepRun:
		return Wrap("data", o.Data), true
	case OpStep:
		return OrNull(o.Data), true
	case OpStepFailed:
		return Wrap("error", o.Error), true
	}
	return nil, false
}

// OrNull is v, or JSON null when empty.
func OrNull(v json.RawMessage) json.RawMessage {
	if len(v) == 0 {
		return json.RawMessage("null")
	}
	return v
}

// Wrap is {"<key>": v}, the shape the SDK reads a step's result or error from.
func Wrap(key string, v json.RawMessage) json.RawMessage {
	b, _ := json.Marshal(map[string]json.RawMessage{key: OrNull(v)})
	return b
}

// FunctionUUID is the internal id of a function sent as ctx.fn_id (a UUID, as the SDKs
// expect): derived from its fully qualified id, so every server sends the same.
func FunctionUUID(slug string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("tempest:function:"+slug)).String()
}

// Op names on the wire.
const (
	OpStepPlanned    = "StepPlanned"
	OpStepRun        = "StepRun"
	OpStep           = "Step"
	OpStepError      = "StepError"
	OpStepFailed     = "StepFailed"
	OpSleep          = "Sleep"
	OpWaitForEvent   = "WaitForEvent"
	OpInvokeFunction = "InvokeFunction"
	OpRunComplete    = "RunComplete"
	OpNone           = "None"
)

// Answer is an app's answer to a call.
type Answer struct {
	Status int
	// SDK is whether the answer came from an Inngest SDK (X-Inngest-SDK); anything else
	// (a proxy's error page, a crashed framework) is retried as a failure.
	SDK bool
	// NoRetry is x-inngest-no-retry: true; RetryAfter the retry-after header.
	NoRetry    bool
	RetryAfter time.Duration
	// Version is the execution version the SDK reported (x-inngest-req-version), 0 if none.
	Version int
	Body    []byte
	// Ops of a 206 answer.
	Ops []Op
}

// MaxAnswerSize is the largest answer read from an app, as Inngest's (4 MiB of output and
// 4 MiB of input).
const MaxAnswerSize = 8 << 20

// ErrTooLarge is an answer over MaxAnswerSize.
var ErrTooLarge = errors.New("the app's answer is over 8 MiB")

// ReadAnswer reads and parses an app's answer, unwrapping a streamed one (201, then
// whitespace keep-alives, then {"status", "headers", "body"}).
func ReadAnswer(resp *http.Response, now time.Time) (Answer, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerSize+1))
	if err != nil {
		return Answer{}, fmt.Errorf("reading the app's answer: %w", err)
	}
	if len(body) > MaxAnswerSize {
		return Answer{}, ErrTooLarge
	}
	a := Answer{Status: resp.StatusCode, Body: body, SDK: resp.Header.Get("X-Inngest-SDK") != ""}
	headers := map[string]string{}
	for _, h := range []string{"x-inngest-no-retry", "retry-after", "x-inngest-req-version"} {
		headers[h] = resp.Header.Get(h)
	}
	if a.Status == http.StatusCreated && a.SDK {
		var s struct {
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
		}
		if err := json.Unmarshal(bytes.TrimSpace(body), &s); err != nil {
			return a, fmt.Errorf("the app's streamed answer is not JSON: %w", err)
		}
		a.Status, a.Body = s.Status, []byte(s.Body)
		for k, v := range s.Headers {
			headers[strings.ToLower(k)] = v
		}
	}
	a.NoRetry = headers["x-inngest-no-retry"] == "true"
	a.RetryAfter = parseRetryAfter(headers["retry-after"], now)
	a.Version, _ = strconv.Atoi(headers["x-inngest-req-version"])
	if a.SDK && a.Status == http.StatusPartialContent {
		if err := json.Unmarshal(a.Body, &a.Ops); err != nil {
			return a, fmt.Errorf("the app's 206 answer is not a list of ops: %w", err)
		}
	}
	return a, nil
}

// parseRetryAfter reads seconds or a date, clamped to [1 s, 24 h] as Inngest does; 0 if absent.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := time.Parse(time.RFC3339, v); err == nil {
		d = t.Sub(now)
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0
	}
	return min(max(d, time.Second), 24*time.Hour)
}

// ErrorBody is the error an app reports (a thrown error, serialized).
type ErrorBody struct {
	Name    string `json:"name"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

// ParseError reads an app's serialized error; a body that is not one gives name "Error"
// and the body (shortened) as the message.
func ParseError(raw []byte) ErrorBody {
	var e ErrorBody
	if err := json.Unmarshal(raw, &e); err != nil || (e.Message == "" && e.Name == "") {
		msg := strings.TrimSpace(string(raw))
		if len(msg) > 500 {
			msg = msg[:500] + "…"
		}
		return ErrorBody{Name: "Error", Message: msg}
	}
	if e.Name == "" {
		e.Name = "Error"
	}
	return e
}
