package api

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// Config of the HTTP layer. Zero values are the documented defaults.
type Config struct {
	// Dev accepts any event key and skips REST auth (tempest dev).
	Dev bool
	// EventKeys accepted on /e/{key} when not Dev. Empty and not Dev rejects every event
	// (503), as a self-hosted Inngest does.
	EventKeys []string
	// SigningKey is required as "Authorization: Bearer <key>" on /v1 when not Dev (raw or
	// in the SDKs' hashed form). Without one, /v1 answers 503 unless InsecureNoAuth.
	SigningKey string
	// InsecureNoAuth leaves /v1 open when there is no SigningKey (outside Dev).
	InsecureNoAuth bool
	// Logger receives the errors behind 5xx answers. Default slog.Default().
	Logger *slog.Logger
	// MaxEvents per request. Default 5000.
	MaxEvents int
	// MaxRequestSize in bytes. Default 16 MiB.
	MaxRequestSize int64
	// MaxBytesInFlight caps the body bytes of the event requests being handled at once
	// (503 with Retry-After beyond). Default 4 × MaxRequestSize.
	MaxBytesInFlight int64
	// Metrics serves GET /metrics (nil: no such route); IngestDuration, when set, times
	// event API requests by status code.
	Metrics        http.Handler
	IngestDuration *prometheus.HistogramVec
}

// MaxEventsDefault is Inngest's limit of events per request.
const MaxEventsDefault = 5000

// New returns the HTTP handler.
func New(b Backend, cfg Config) http.Handler {
	if cfg.MaxEvents == 0 {
		cfg.MaxEvents = MaxEventsDefault
	}
	if cfg.MaxRequestSize == 0 {
		cfg.MaxRequestSize = 16 << 20
	}
	cfg.MaxBytesInFlight = max(cmp.Or(cfg.MaxBytesInFlight, 4*cfg.MaxRequestSize), cfg.MaxRequestSize)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	kind := "cloud"
	if cfg.Dev {
		kind = "dev"
	}
	r.Use(gin.CustomRecovery(func(c *gin.Context, err any) {
		cfg.Logger.Error("panic in HTTP handler", "path", c.Request.URL.Path, "panic", err)
		publicErr(c, 500, internalMsg)
	}), func(c *gin.Context) { c.Header("X-Inngest-Server-Kind", kind) })
	if cfg.Dev {
		r.Use(loopbackOnly)
	} else {
		r.Use(requestLog(cfg.Logger))
	}
	h := &handlers{b: b, cfg: cfg, inFlight: &budget{max: cfg.MaxBytesInFlight}, keys: hashKeys(cfg.EventKeys), kind: kind}
	r.GET("/health", func(c *gin.Context) { c.JSON(200, gin.H{"status": 200, "message": "OK"}) })
	r.GET("/ready", h.ready)
	if cfg.Metrics != nil {
		r.GET("/metrics", h.auth, gin.WrapH(cfg.Metrics))
	}
	r.OPTIONS("/e/:key", anyOrigin)
	r.POST("/e/:key", anyOrigin, h.receiveEvent)
	r.POST("/fn/register", h.auth, h.register)
	r.GET("/v0/runs/:id/actions", h.auth, h.callState("actions"))
	r.GET("/v0/runs/:id/batch", h.auth, h.callState("batch"))
	v1 := r.Group("/v1", h.auth)
	v1.GET("/events", h.listEvents)
	v1.GET("/events/:id", h.getEvent)
	v1.GET("/events/:id/runs", h.getEventRuns)
	v1.GET("/runs/:id", h.getRun)
	v1.DELETE("/runs/:id", h.cancelRun)
	v1.POST("/cancellations", h.cancelRuns)
	v1.POST("/replays", h.startReplay)
	v1.GET("/replays/:id", h.getReplay)
	v1.DELETE("/replays/:id", h.cancelReplay)
	v1.GET("/apps/:app/functions", h.getAppFunctionsV1)
	v1.POST("/checkpoint/:id/async", h.checkpoint)
	v2 := r.Group("/v2", h.auth)
	v2.GET("/apps", h.listApps)
	v2.GET("/apps/:app", h.getApp)
	v2.GET("/apps/:app/functions", h.listAppFunctions)
	v2.GET("/apps/:app/functions/:fn", h.getAppFunction)
	v2.DELETE("/apps/:app", h.removeApp)
	v2.POST("/apps", h.syncApp)
	v2.POST("/apps/:app/sync", h.syncApp)
	v2.POST("/apps/:app/functions/:fn/pause", h.pauseFunction)
	v2.POST("/apps/:app/functions/:fn/resume", h.resumeFunction)
	v2.GET("/apps/:app/functions/:fn/runs", h.listRuns)
	v2.GET("/runs", h.listRuns)
	v2.GET("/runs/:id", h.getRunV2)
	v2.GET("/runs/:id/trace", h.getRunTrace)
	v2.POST("/runs/:id/rerun", h.rerun)
	v2.GET("/events/:id/runs", h.getEventRunsV2)
	r.NoRoute(func(c *gin.Context) { publicErr(c, 404, "not found: "+c.Request.Method+" "+c.Request.URL.Path) })
	return r
}

type handlers struct {
	b        Backend
	cfg      Config
	inFlight *budget
	keys     [][32]byte // hashes of the event keys
	kind     string     // "dev" or "cloud", as X-Inngest-Server-Kind
}

type eventResponse struct {
	IDs    []string `json:"ids"`
	Status int      `json:"status"`
	Error  string   `json:"error,omitempty"`
}

func (h *handlers) receiveEvent(c *gin.Context) {
	if h.cfg.IngestDuration != nil {
		began := time.Now()
		defer func() {
			h.cfg.IngestDuration.WithLabelValues(strconv.Itoa(c.Writer.Status())).Observe(time.Since(began).Seconds())
		}()
	}
	if !h.cfg.Dev {
		key := c.Param("key")
		if len(h.cfg.EventKeys) == 0 {
			keyErr(c, 503, "Event keys are required to process events securely")
			return
		}
		if !h.eventKeyMatches(key) {
			keyErr(c, 401, "Event key not found")
			return
		}
	}
	status, resp := h.ingest(c)
	if status == 503 {
		c.Header("Retry-After", "1")
	}
	c.JSON(status, resp)
}

// ingest decodes and accepts the request's events. The body's bytes count against the
// in-flight budget until it returns, which is before the answer is written.
func (h *handlers) ingest(c *gin.Context) (int, eventResponse) {
	fail := func(status int, msg string) (int, eventResponse) {
		return status, eventResponse{IDs: []string{}, Status: status, Error: msg}
	}
	tooBig := fmt.Sprintf("Request body is over the max size of %d bytes", h.cfg.MaxRequestSize)
	const busy = "Too many request bytes in flight on this server: retry in a second"
	size := c.Request.ContentLength
	if size > h.cfg.MaxRequestSize {
		return fail(413, tooBig)
	}
	var body io.Reader = http.MaxBytesReader(c.Writer, c.Request.Body, h.cfg.MaxRequestSize)
	if size > 0 {
		if !h.inFlight.take(size) {
			return fail(503, busy)
		}
		defer h.inFlight.give(size)
	} else { // chunked: no length up front
		m := &meteredReader{r: body, b: h.inFlight}
		defer func() { h.inFlight.give(m.taken) }()
		body = m
	}
	events, err := splitEvents(body, h.cfg.MaxEvents)
	var maxErr *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &maxErr):
		return fail(413, tooBig)
	case errors.Is(err, errBusy):
		return fail(503, busy)
	case errors.As(err, &netErr) && netErr.Timeout():
		return fail(408, "Request body did not arrive within the server's read timeout")
	case err != nil:
		return fail(400, err.Error())
	}
	ids, err := h.b.Ingest(c.Request.Context(), c.GetHeader("x-inngest-event-id-seed"), events)
	var inErr *InputError
	switch {
	case errors.As(err, &inErr):
		return fail(400, inErr.Msg)
	case err != nil:
		// Nothing is acknowledged; the client retries, and the retry is idempotent.
		h.cfg.Logger.Error("ingest failed", "events", len(events), "error", err)
		return fail(500, "Unable to accept events right now: retry the request")
	}
	return 200, eventResponse{IDs: ids, Status: 200}
}

// splitEvents decodes a body of one event object or an array of at most max, one event at
// a time from the stream, so that only the events are held, not the body as well.
func splitEvents(r io.Reader, max int) ([]json.RawMessage, error) {
	br := bufio.NewReader(r)
	lead, err := skipSpace(br)
	if err == io.EOF {
		return nil, nil
	} else if err != nil {
		return nil, jsonErr(err, "")
	}
	first, _ := br.Peek(1)
	dec := json.NewDecoder(br)
	var out []json.RawMessage
	what := "object"
	switch first[0] {
	case '{':
		var one json.RawMessage
		if err := dec.Decode(&one); err != nil {
			return nil, jsonErr(err, "")
		}
		out = []json.RawMessage{one}
	case '[':
		what = "array"
		_, _ = dec.Token()
		for dec.More() {
			if len(out) == max {
				return nil, fmt.Errorf("Cannot have more than %d events in a batch", max)
			}
			var ev json.RawMessage
			if err := dec.Decode(&ev); err != nil {
				return nil, jsonErr(err, fmt.Sprintf(" at event %d", len(out)))
			}
			out = append(out, ev)
		}
		if _, err := dec.Token(); err != nil {
			return nil, jsonErr(err, "")
		}
	default:
		return nil, errors.New("Request body must contain an event object or an array of event objects")
	}
	// Only whitespace may follow, as json.Unmarshal requires.
	at := int64(lead) + dec.InputOffset()
	n, err := skipSpace(bufio.NewReader(io.MultiReader(dec.Buffered(), br)))
	switch {
	case err == nil:
		return nil, fmt.Errorf("Invalid JSON in request body: unexpected data after the event %s at byte %d", what, at+int64(n))
	case err != io.EOF:
		return nil, jsonErr(err, "")
	}
	return out, nil
}

// jsonErr words syntax errors for the client; the reader's own errors (size limit,
// timeout) stay wrapped for errors.As.
func jsonErr(err error, where string) error {
	var syn *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("Invalid JSON in request body%s: unexpected end of JSON input", where)
	case errors.As(err, &syn):
		return fmt.Errorf("Invalid JSON in request body%s: %v", where, err)
	}
	return fmt.Errorf("Unable to read request body: %w", err)
}

// skipSpace consumes JSON whitespace and counts it; io.EOF means nothing else followed.
func skipSpace(br *bufio.Reader) (int, error) {
	for n := 0; ; n++ {
		b, err := br.Peek(1)
		if err != nil {
			return n, err
		}
		if c := b[0]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return n, nil
		}
		_, _ = br.ReadByte()
	}
}

var ulidRE = regexp.MustCompile(`^[0-7][0-9A-HJKMNP-TV-Z]{25}$`)

func (h *handlers) getEvent(c *gin.Context) {
	id, ok := ulidParam(c)
	if !ok {
		return
	}
	ev, err := h.b.Event(c.Request.Context(), id)
	if h.fail(c, err, "Event not found") {
		return
	}
	ok200(c, ev)
}

func (h *handlers) getEventRuns(c *gin.Context) {
	id, ok := ulidParam(c)
	if !ok {
		return
	}
	runs, err := h.b.EventRuns(c.Request.Context(), id)
	if h.fail(c, err, "Event not found") {
		return
	}
	ok200(c, runs)
}

func (h *handlers) getRun(c *gin.Context) {
	id, ok := ulidParam(c)
	if !ok {
		return
	}
	run, err := h.b.Run(c.Request.Context(), id)
	if h.fail(c, err, "Function run not found") {
		return
	}
	ok200(c, run)
}

func (h *handlers) cancelRun(c *gin.Context) {
	id, ok := ulidParam(c)
	if !ok {
		return
	}
	err := h.b.CancelRun(c.Request.Context(), id)
	if errors.Is(err, ErrRunFinished) {
		publicErr(c, 409, err.Error())
		return
	}
	if h.fail(c, err, "Function run not found") {
		return
	}
	c.Status(200)
}

func (h *handlers) cancelRuns(c *gin.Context) {
	var req CancellationRequest
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, 1<<20)
	if err := c.ShouldBindJSON(&req); err != nil {
		publicErr(c, 400, "Invalid request body: "+err.Error())
		return
	}
	var problems []string
	if req.AppID == "" {
		problems = append(problems, "app_id is required")
	}
	if req.FunctionID == "" {
		problems = append(problems, "function_id is required")
	}
	if req.StartedBefore == nil {
		problems = append(problems, "started_before is required")
	} else {
		if req.StartedBefore.After(time.Now().Add(5 * time.Second)) {
			problems = append(problems, "started_before must be in the past")
		}
		if req.StartedAfter != nil && !req.StartedAfter.Before(*req.StartedBefore) {
			problems = append(problems, "started_after must be before started_before")
		}
	}
	if len(problems) > 0 {
		publicErr(c, 400, strings.Join(problems, "; "))
		return
	}
	out, err := h.b.CancelRuns(c.Request.Context(), req)
	var inErr *InputError
	if errors.As(err, &inErr) {
		publicErr(c, 400, inErr.Msg)
		return
	}
	if h.fail(c, err, "function not found") {
		return
	}
	ok200(c, out)
}

func ulidParam(c *gin.Context) (string, bool) {
	id := strings.ToUpper(c.Param("id"))
	if !ulidRE.MatchString(id) {
		publicErr(c, 400, fmt.Sprintf("Invalid ID: %q is not a ULID", c.Param("id")))
		return "", false
	}
	return id, true
}

func (h *handlers) fail(c *gin.Context, err error, notFound string) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrNotFound):
		publicErr(c, 404, notFound)
	case errors.As(err, new(*InputError)):
		var inErr *InputError
		errors.As(err, &inErr)
		publicErr(c, 400, inErr.Msg)
	default:
		h.cfg.Logger.Error("REST request failed", "method", c.Request.Method, "path", c.Request.URL.Path, "error", err)
		publicErr(c, 500, internalMsg)
	}
	return true
}

func ok200(c *gin.Context, data any) {
	c.JSON(200, gin.H{"data": data, "metadata": gin.H{"fetched_at": time.Now().UTC().Format(time.RFC3339Nano)}})
}

// internalMsg answers a 5xx: the error itself goes to the log, not to the client.
const internalMsg = "Internal server error: the request can be retried"

// publicErr writes Inngest's REST error shape.
func publicErr(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, gin.H{"error": msg, "status": status, "data": nil})
}

// keyErr writes the event API's key-error shape (no ids), as Inngest does.
func keyErr(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, gin.H{"status": status, "message": "", "error": msg})
}

// requestLog writes one line per request (outside dev) at Info, or Warn for a 5xx: method,
// path, status, duration, body size and the client's address. Keys and bodies are not
// logged.
func requestLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		began := time.Now()
		c.Next()
		level := slog.LevelInfo
		if c.Writer.Status() >= 500 {
			level = slog.LevelWarn
		}
		log.LogAttrs(c.Request.Context(), level, "request",
			slog.String("method", c.Request.Method), slog.String("path", c.Request.URL.Path),
			slog.Int("status", c.Writer.Status()), slog.Duration("duration", time.Since(began)),
			slog.Int64("bytes_in", c.Request.ContentLength), slog.Int("bytes_out", c.Writer.Size()),
			slog.String("remote", c.ClientIP()))
	}
}
