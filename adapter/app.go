// Package adapter is Tempest's runtime as a library: an App holds functions (CreateFunction),
// accepts events (Ingest/Send, or over HTTP with Serve), starts one Temporal workflow per
// (function, event) and runs those workflows in a worker.
package adapter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/activities"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/eventlog"
	"github.com/tempestrun/tempest/internal/metrics"
	"github.com/tempestrun/tempest/internal/registry"
	"github.com/tempestrun/tempest/workflows"
)

// Defaults of Options.
const (
	DefaultTemporalAddress = "127.0.0.1:7233"
	DefaultNamespace       = "default"
	DefaultAddr            = ":8288"
	DefaultMaxEventSize    = 512 << 10
	DefaultEventRetention  = 30 * 24 * time.Hour
	// DefaultMaxRequestSize fits a full array of 5000 events of 3 KiB each.
	DefaultMaxRequestSize = 16 << 20
	// HTTP server timeouts: a request (headers and body) must arrive within
	// DefaultReadTimeout, and its answer be written within DefaultWriteTimeout of the
	// headers; a keep-alive connection may stay idle for DefaultIdleTimeout.
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = time.Minute
	DefaultWriteTimeout      = 2 * time.Minute
	DefaultIdleTimeout       = time.Minute
)

// Options configures an App. Empty fields fall back to the environment variable named in
// their comment, then to the default.
type Options struct {
	// AppID names the app; function ids are prefixed with it ("<app>-<fn>"). Required.
	AppID string
	// Functions are definitions made apart from the app (NewFunctions + CreateFunction):
	// the app runs them as if they had been created on it. Their app id must be AppID.
	Functions *Functions
	// Environment is the set of apps that share one event API: every app publishes its
	// functions to the environment's registry when its worker starts, and an event sent to
	// any process of the environment fans out to every matching function of every app.
	// $TEMPEST_ENVIRONMENT, else the Temporal namespace.
	Environment string
	// Temporal is a client whose connection to share; when nil, New dials
	// TemporalAddress/Namespace. Either way the app's client stores payloads over 256 KiB in
	// Redis (a reference stays in the history).
	Temporal client.Client
	// TemporalAddress is host:port of the Temporal frontend. $TEMPORAL_ADDRESS, else
	// 127.0.0.1:7233.
	TemporalAddress string
	// Namespace is the Temporal namespace. $TEMPORAL_NAMESPACE, else "default".
	Namespace string
	// Redis is a client to use; when nil, New connects to RedisURL.
	Redis redis.UniversalClient
	// RedisURL, like redis://127.0.0.1:6379/0. $REDIS_URL. Required when Redis is nil.
	RedisURL string
	// TaskQueue of the app's runs. Default "tempest-<AppID>".
	TaskQueue string
	// Dev accepts any event key and leaves the REST API open, like Inngest's dev server.
	// $INNGEST_DEV (any true value).
	Dev bool
	// EventKeys accepted on POST /e/{key} when not Dev. $INNGEST_EVENT_KEY (comma-separated).
	EventKeys []string
	// SigningKey required as a Bearer token on /v1 when not Dev. $INNGEST_SIGNING_KEY.
	// Outside dev, Serve refuses to start without one unless InsecureNoAuth.
	SigningKey string
	// InsecureNoAuth leaves /v1 (runs, cancellation) open to anyone who can reach it when
	// there is no SigningKey; Serve logs a warning. $TEMPEST_INSECURE_NO_AUTH.
	InsecureNoAuth bool
	// DisableMetrics turns metrics off: no GET /metrics, no Temporal SDK metrics, no Redis
	// timing, no backlog queries (the baseline of the metrics benchmark). Default on.
	DisableMetrics bool
	// TracerProvider traces runs with OpenTelemetry: a span per event API request or
	// Ingest, and under it, through Temporal's tracing interceptor, each run's start,
	// workflow and steps (one trace per request). nil: no tracing. The commands build one
	// from the OTEL_* environment (OTLP over gRPC) when an endpoint is set.
	TracerProvider trace.TracerProvider
	// Addr is the HTTP listen address of Serve. Default ":8288": every interface, as a
	// server in a container needs; "127.0.0.1:8288" accepts local connections only.
	Addr string
	// MaxEventSize is the largest event in bytes. Default 512 KiB.
	MaxEventSize int
	// MaxRequestSize is the largest request body of the event API in bytes (413 above).
	// Default 16 MiB.
	MaxRequestSize int64
	// MaxBytesInFlight caps the request-body bytes that all requests being decoded and
	// ingested hold at once; a request that would exceed it gets 503 with Retry-After.
	// Default 4 × MaxRequestSize; at least MaxRequestSize.
	MaxBytesInFlight int64
	// Timeouts of Serve's HTTP server; defaults DefaultReadHeaderTimeout etc.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// DatabaseURL is the event log: every accepted event is written there before it is
	// acknowledged, dispatched from there, and listed from there. postgres://... (the
	// production shape: every process of the environment shares it, and a process that dies
	// leaves its undispatched events to the others), or sqlite:<path> (one machine).
	// $DATABASE_URL, else sqlite:.tempest/events.db in the working directory.
	DatabaseURL string
	// EventRetention is how long events are kept in the log. Default 30 days.
	EventRetention time.Duration
	// Logger for the app and its worker. Default slog.Default().
	Logger *slog.Logger
	// Worker options of the app's worker (pollers, concurrent task slots); zero values are
	// the Temporal SDK's defaults.
	Worker worker.Options

	// intakeLease and intakeClaimEvery replace dispatchLease and claimEvery (tests).
	intakeLease, intakeClaimEvery time.Duration
}

// App is a Tempest application: its functions, its event intake and its worker.
type App struct {
	opts     Options
	temporal client.Client
	// dc is the client's data converter: it decodes what histories hold (Redis-kept too).
	dc       converter.DataConverter
	redis    redis.UniversalClient
	owned    []func() // clients New opened, closed by Close
	log      *slog.Logger
	waits    *flowcontrol.Waits
	admitter *flowcontrol.Admitter
	buffers  *flowcontrol.Buffers
	acts     *activities.Activities // what the app's runs use
	events   *eventlog.Log
	intake   *intake
	stop     context.CancelFunc // stops the flusher
	exprs    sync.Map           // CEL source -> *expr.Program, for wait conditions

	mu        sync.RWMutex
	functions map[string]*function // this app's, by slug
	remote    map[string]*function // other apps', from the registry, by slug
	paused    map[string]bool      // functions paused in the registry, by slug
	routes    atomic.Pointer[routes]
	metrics   *metrics.Metrics
	tracer    trace.Tracer
	// sdkClient calls SDK apps (their steps, and syncs).
	sdkClient *http.Client
}

// New validates opts, connects to Temporal and Redis (failing fast with a message that
// says which is unreachable) and registers Tempest's search attributes when missing.
func New(ctx context.Context, opts Options) (*App, error) {
	if err := opts.resolve(); err != nil {
		return nil, err
	}
	a := &App{opts: opts, log: opts.Logger, functions: map[string]*function{}, remote: map[string]*function{}, metrics: metrics.New()}
	a.routes.Store(buildRoutes(nil, nil))
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if a.redis = opts.Redis; a.redis == nil {
		ro, err := redis.ParseURL(opts.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL %q: %w", opts.RedisURL, err)
		}
		rc := redis.NewClient(ro)
		if !opts.DisableMetrics {
			rc.AddHook(a.metrics.RedisHook()) // only on a client of its own: hooks add up
		}
		a.owned = append(a.owned, func() { rc.Close() })
		a.redis = rc
	}
	a.waits = flowcontrol.NewWaits(a.redis, nil)
	a.admitter = flowcontrol.NewAdmitter(a.redis, nil)
	a.buffers = flowcontrol.NewBuffers(a.redis, nil)
	slots := flowcontrol.NewSlotWaker(a.redis)
	a.owned = append(a.owned, slots.Close)
	a.acts = &activities.Activities{Redis: a.redis, Waits: a.waits, Slots: slots, Metrics: a.metrics, Send: a.sendEvents, Resolve: a.resolve, CallApp: a.callApp}
	// Calls to an SDK app keep their connections: net/http's default of 2 idle per host
	// closed all but two after each burst, and every call then paid a new connection.
	// They are closed after 4 s idle, before node's server closes them (its
	// keepAliveTimeout is 5 s); a call that still meets a closed one is sent again
	// (sdkhttp.NewCall).
	sdkTransport := http.DefaultTransport.(*http.Transport).Clone()
	sdkTransport.MaxIdleConnsPerHost, sdkTransport.IdleConnTimeout = 256, 4*time.Second
	a.sdkClient = &http.Client{Transport: sdkTransport}
	if err := a.redis.Ping(dialCtx).Err(); err != nil {
		a.Close()
		return nil, fmt.Errorf("redis is unreachable (REDIS_URL=%s): %w", opts.RedisURL, err)
	}
	if err := a.openLog(dialCtx); err != nil {
		a.Close()
		return nil, err
	}
	// Payloads over 256 KiB (large batches, large step results) go to Redis, referenced
	// from the history.
	a.dc = converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), flowcontrol.PayloadCodec{Redis: a.redis})
	copts := client.Options{
		HostPort: opts.TemporalAddress, Namespace: opts.Namespace, Logger: sdklog.NewStructuredLogger(opts.Logger),
		DataConverter: a.dc,
	}
	if !opts.DisableMetrics {
		copts.MetricsHandler = a.metrics.SDKHandler()
	}
	a.tracer = tracenoop.NewTracerProvider().Tracer("tempest")
	if opts.TracerProvider != nil {
		a.tracer = opts.TracerProvider.Tracer("tempest")
		ti, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{Tracer: a.tracer})
		if err != nil {
			return nil, fmt.Errorf("tracing: %w", err)
		}
		copts.Interceptors = append(copts.Interceptors, ti)
	}
	var c client.Client
	var err error
	if opts.Temporal != nil {
		c, err = client.NewClientFromExistingWithContext(dialCtx, opts.Temporal, copts)
	} else {
		c, err = client.DialContext(dialCtx, copts)
	}
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("temporal is unreachable at %s (TEMPORAL_ADDRESS): %w", opts.TemporalAddress, err)
	}
	a.owned = append(a.owned, c.Close)
	a.temporal = c
	if !opts.DisableMetrics {
		a.metrics.Registry().MustRegister(newBacklogCollector(a))
	}
	if err := ensureSearchAttributes(dialCtx, a.temporal, opts.Namespace); err != nil {
		a.Close()
		return nil, fmt.Errorf("temporal namespace %q: %w", opts.Namespace, err)
	}
	if fs := opts.Functions; fs != nil {
		if fs.appID != opts.AppID {
			a.Close()
			return nil, fmt.Errorf("adapter.Options: Functions are defined for app %q, not %q", fs.appID, opts.AppID)
		}
		for _, f := range fs.list() {
			if err := a.register(f); err != nil {
				a.Close()
				return nil, err
			}
		}
	}
	// Route from the environment's registry, and follow its changes.
	wctx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	a.owned = append(a.owned, stopWatch)
	if err := registry.Watch(wctx, a.redis, opts.Environment, a.applyRegistry, func(err error) {
		a.log.Warn("registry: refresh failed; routing from the last snapshot", "err", err)
	}); err != nil {
		a.Close()
		return nil, err
	}
	a.startIntake()
	a.owned = append(a.owned, a.stopIntake)
	return a, nil
}

// DefaultDatabaseURL is the event log when neither Options.DatabaseURL nor $DATABASE_URL
// is set: SQLite in the directory tempest dev keeps its data in.
const DefaultDatabaseURL = "sqlite:.tempest/events.db"

// openLog opens (and creates or migrates) the event log.
func (a *App) openLog(ctx context.Context) error {
	url := a.opts.DatabaseURL
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("event log (DATABASE_URL %s): %w", url, err)
			}
		}
	}
	l, err := eventlog.Open(ctx, eventlog.Options{URL: url})
	if err != nil {
		return fmt.Errorf("event log (DATABASE_URL): %w", err)
	}
	a.events = l
	a.owned = append(a.owned, func() { _ = l.Close() })
	return nil
}

func (o *Options) resolve() error {
	if o.AppID == "" {
		return errors.New("adapter.Options: AppID is required")
	}
	if !idRE.MatchString(o.AppID) {
		return fmt.Errorf("adapter.Options: AppID %q: use letters, digits, '-', '_' or '.'", o.AppID)
	}
	o.TemporalAddress = cmp.Or(o.TemporalAddress, os.Getenv("TEMPORAL_ADDRESS"), DefaultTemporalAddress)
	o.Namespace = cmp.Or(o.Namespace, os.Getenv("TEMPORAL_NAMESPACE"), DefaultNamespace)
	o.RedisURL = cmp.Or(o.RedisURL, os.Getenv("REDIS_URL"))
	if o.Redis == nil && o.RedisURL == "" {
		return errors.New("adapter.Options: set Redis or RedisURL ($REDIS_URL), e.g. redis://127.0.0.1:6379")
	}
	o.TaskQueue = cmp.Or(o.TaskQueue, "tempest-"+o.AppID)
	o.Environment = cmp.Or(o.Environment, os.Getenv("TEMPEST_ENVIRONMENT"), o.Namespace)
	if dev, err := strconv.ParseBool(os.Getenv("INNGEST_DEV")); err == nil && dev {
		o.Dev = true
	}
	if len(o.EventKeys) == 0 && os.Getenv("INNGEST_EVENT_KEY") != "" {
		for _, k := range strings.Split(os.Getenv("INNGEST_EVENT_KEY"), ",") {
			if k = strings.TrimSpace(k); k != "" {
				o.EventKeys = append(o.EventKeys, k)
			}
		}
	}
	o.SigningKey = cmp.Or(o.SigningKey, os.Getenv("INNGEST_SIGNING_KEY"))
	if v, err := strconv.ParseBool(os.Getenv("TEMPEST_INSECURE_NO_AUTH")); err == nil && v {
		o.InsecureNoAuth = true
	}
	o.Addr = cmp.Or(o.Addr, DefaultAddr)
	o.MaxEventSize = cmp.Or(o.MaxEventSize, DefaultMaxEventSize)
	if o.MaxEventSize < 0 {
		return fmt.Errorf("adapter.Options: MaxEventSize %d is negative", o.MaxEventSize)
	}
	o.MaxRequestSize = cmp.Or(o.MaxRequestSize, DefaultMaxRequestSize)
	if o.MaxRequestSize < 0 {
		return fmt.Errorf("adapter.Options: MaxRequestSize %d is negative", o.MaxRequestSize)
	}
	o.MaxBytesInFlight = max(cmp.Or(o.MaxBytesInFlight, 4*o.MaxRequestSize), o.MaxRequestSize)
	o.ReadHeaderTimeout = cmp.Or(o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	o.ReadTimeout = cmp.Or(o.ReadTimeout, DefaultReadTimeout)
	o.WriteTimeout = cmp.Or(o.WriteTimeout, DefaultWriteTimeout)
	o.IdleTimeout = cmp.Or(o.IdleTimeout, DefaultIdleTimeout)
	o.EventRetention = cmp.Or(o.EventRetention, DefaultEventRetention)
	o.DatabaseURL = cmp.Or(o.DatabaseURL, os.Getenv("DATABASE_URL"), DefaultDatabaseURL)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Close stops the flusher and closes the clients New opened (not those passed in Options).
func (a *App) Close() {
	if a.stop != nil {
		a.stop()
	}
	for _, f := range slices.Backward(a.owned) { // last opened, first closed
		f()
	}
	a.owned = nil
}

// AppID is the app's id.
func (a *App) AppID() string { return a.opts.AppID }

// Temporal is the app's Temporal client.
func (a *App) Temporal() client.Client { return a.temporal }

// Options returns the resolved options.
func (a *App) Options() Options { return a.opts }

// resolve finds a function for step.Invoke by its id in this app or, for any app's, its
// fully qualified id (activities.Activities.Resolve).
func (a *App) resolve(id string) (activities.FunctionInfo, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	f, ok := a.functions[a.opts.AppID+"-"+id]
	if !ok {
		f, ok = a.routes.Load().bySlug[id] // any app's, by fully qualified id
	}
	if !ok {
		return activities.FunctionInfo{}, false
	}
	return activities.FunctionInfo{Slug: f.slug, TaskQueue: f.taskQueue, Retries: f.retries}, true
}

func (a *App) registrarAppID() string        { return a.opts.AppID }
func (a *App) addFunction(f *function) error { return a.register(f) }

func (a *App) register(f *function) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.functions[f.slug]; dup {
		return fmt.Errorf("function %q is already registered in app %q", f.opts.ID, a.opts.AppID)
	}
	f.taskQueue = a.opts.TaskQueue
	a.functions[f.slug] = f
	a.reroute()
	return nil
}

// Search attributes Tempest sets on every run, so the Web UI can list "the runs of
// function F" (TempestFunctionID = "F") or "the runs for event E" (TempestEventID = "E").
var (
	SAFunctionID = workflows.SAFunctionID
	SAEventID    = workflows.SAEventID
	SAEventName  = workflows.SAEventName
	SARerunOf    = workflows.SARerunOf
	SAReplayID   = workflows.SAReplayID
)

// SearchAttributes lists the custom search attributes a namespace needs for Tempest.
func SearchAttributes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		SAFunctionID.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SAEventID.GetName():    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SAEventName.GetName():  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SARerunOf.GetName():    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SAReplayID.GetName():   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	}
}

func ensureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range SearchAttributes() {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			missing[name] = typ
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing,
	}); err != nil {
		return fmt.Errorf("add search attributes %v (or add them with `temporal operator search-attribute create`): %w", missing, err)
	}
	return nil
}

// Handler is the HTTP API (event API, REST v1, /health) for embedding in another server.
func (a *App) Handler() http.Handler {
	cfg := api.Config{
		Dev: a.opts.Dev, EventKeys: a.opts.EventKeys, SigningKey: a.opts.SigningKey, InsecureNoAuth: a.opts.InsecureNoAuth,
		MaxRequestSize: a.opts.MaxRequestSize, MaxBytesInFlight: a.opts.MaxBytesInFlight, Logger: a.log,
	}
	if !a.opts.DisableMetrics {
		cfg.Metrics, cfg.IngestDuration = a.metrics.Handler(), a.metrics.IngestDuration
	}
	return api.New(a, cfg)
}

// MetricsHandler serves the app's metrics in Prometheus' text format (GET /metrics of
// Handler serves the same, behind the signing key outside dev).
func (a *App) MetricsHandler() http.Handler { return a.metrics.Handler() }

// MetricsRegistry is the app's Prometheus registry, for collectors of one's own.
func (a *App) MetricsRegistry() *prometheus.Registry { return a.metrics.Registry() }

// WorkflowRegistry is where RegisterWorkflows puts the app's workflows: a worker.Worker,
// or a worker.WorkflowReplayer to check recorded histories against the current code.
type WorkflowRegistry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// RegisterWorkflows registers one workflow per function, named by its fully qualified id
// (and the workflows of cron ticks and of skipped runs' records).
func (a *App) RegisterWorkflows(r WorkflowRegistry) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if len(a.functions) == 0 {
		return fmt.Errorf("app %q has no functions to run: register some with CreateFunction", a.opts.AppID)
	}
	for _, f := range a.functions {
		r.RegisterWorkflowWithOptions(workflows.Workflow(f.handler, a.acts), workflow.RegisterOptions{Name: f.slug})
	}
	r.RegisterWorkflowWithOptions(a.cronTickWorkflow, workflow.RegisterOptions{Name: cronWorkflow})
	r.RegisterWorkflowWithOptions(skippedRecordWorkflow, workflow.RegisterOptions{Name: skippedWorkflow})
	r.RegisterWorkflowWithOptions(a.replayWorkflow, workflow.RegisterOptions{Name: replayWorkflowType})
	return nil
}

// StartWorker syncs the app's cron schedules, starts a worker running its functions (stop
// it with Stop) and, once per app, the flusher of debounce and batch buffers (stopped by
// Close).
func (a *App) StartWorker(ctx context.Context) (worker.Worker, error) {
	w := worker.New(a.temporal, a.opts.TaskQueue, a.opts.Worker)
	if err := a.RegisterWorkflows(w); err != nil {
		return nil, err
	}
	if err := a.SyncSchedules(ctx); err != nil {
		return nil, fmt.Errorf("cron schedules: %w", err)
	}
	// Every process of the environment routes to the app's functions from now on (runs
	// started before the worker polls wait for it in Temporal).
	if err := a.publish(ctx); err != nil {
		return nil, err
	}
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	a.startFlusher(ctx)
	return w, nil
}

// startFlusher runs the flusher of due buffers (of every function of the environment)
// until Close.
func (a *App) startFlusher(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stop == nil {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		a.stop = cancel
		go a.flusher(fctx)
	}
}

// Worker runs the app's worker until ctx is done.
func (a *App) Worker(ctx context.Context) error {
	w, err := a.StartWorker(ctx)
	if err != nil {
		return err
	}
	<-ctx.Done()
	w.Stop()
	return nil
}

// Serve runs the HTTP API on Options.Addr and the worker until ctx is done.
func (a *App) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.opts.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.opts.Addr, err)
	}
	return a.ServeListener(ctx, ln)
}

// CheckServe says why Serve would refuse to start: outside dev it needs event keys, and a
// signing key for /v1 unless InsecureNoAuth.
func (a *App) CheckServe() error {
	switch {
	case a.opts.Dev:
	case len(a.opts.EventKeys) == 0:
		return errors.New("no event keys: set INNGEST_EVENT_KEY (comma-separated) or run in dev mode (INNGEST_DEV=1, tempest dev)")
	case a.opts.SigningKey == "" && !a.opts.InsecureNoAuth:
		return errors.New("no signing key: set INNGEST_SIGNING_KEY to protect the REST API (/v1), or leave /v1 open to anyone who can reach it with --insecure-no-auth (TEMPEST_INSECURE_NO_AUTH=1, Options.InsecureNoAuth)")
	}
	return nil
}

// ServeListener is Serve on a listener the caller opened.
func (a *App) ServeListener(ctx context.Context, ln net.Listener) error {
	if err := a.CheckServe(); err != nil {
		ln.Close()
		return err
	}
	if !a.opts.Dev && a.opts.SigningKey == "" {
		a.log.Warn("INSECURE: no signing key and InsecureNoAuth is set: the REST API /v1 (runs, cancellation) is open to anyone who can reach " + ln.Addr().String())
	}
	a.mu.RLock()
	gateway := len(a.functions) == 0
	a.mu.RUnlock()
	if gateway { // no functions of its own: the event and REST API for the environment
		a.startFlusher(ctx)
	} else {
		w, err := a.StartWorker(ctx)
		if err != nil {
			ln.Close()
			return err
		}
		defer w.Stop()
	}
	// Every server runs the functions SDK apps serve over HTTP.
	sdkWorker, err := a.startSDKWorker()
	if err != nil {
		ln.Close()
		return err
	}
	defer sdkWorker.Stop()
	// Slow bodies and idle keep-alive connections are closed, so they cannot pin the server.
	srv := &http.Server{
		Handler: a.Handler(), ReadHeaderTimeout: a.opts.ReadHeaderTimeout, ReadTimeout: a.opts.ReadTimeout,
		WriteTimeout: a.opts.WriteTimeout, IdleTimeout: a.opts.IdleTimeout,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
