// Package metrics holds Tempest's Prometheus metrics: one registry per app, the metrics
// Tempest defines (all in this file, each with its help text), and the Temporal SDK's own
// metrics handler onto the same registry, so that workflow code can count without
// counting again on replay (the SDK silences a workflow's metrics while it replays).
//
// Labels are bounded: function ids, app ids, statuses and reasons, never event or run ids
// or flow-control keys. Event names are labels only when some function's trigger names
// them exactly (else "other"), so a client cannot grow the label set.
package metrics

import (
	"errors"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
)

// Metrics is one app's metrics.
type Metrics struct {
	reg *prometheus.Registry
	sdk *sdkHandler

	// EventsReceived counts events by name ("other" for names no trigger names) and outcome
	// (accepted, rejected).
	EventsReceived *prometheus.CounterVec
	// IngestDuration is the time of an event API request, by HTTP status code.
	IngestDuration *prometheus.HistogramVec
	// RunsStarted counts runs started, by function.
	RunsStarted *prometheus.CounterVec
	// FlowControl counts flow-control decisions by function and decision.
	FlowControl *prometheus.CounterVec
	// ThrottleDelay is how long a throttled run waits for its slot, by function.
	ThrottleDelay *prometheus.HistogramVec
	// RedisDuration is the latency of Redis commands and pipelines, by command.
	RedisDuration *prometheus.HistogramVec
	// WaitsResumed counts events delivered to what waited for them, by kind: a
	// step.WaitForEvent resumed ("wait"), or a cancelOn rule that cancelled its run
	// ("cancel").
	WaitsResumed *prometheus.CounterVec
	// WaitsRegistered counts step.WaitForEvent waits that began.
	WaitsRegistered prometheus.Counter
	// ConcurrencyLeases is the number of this process's steps holding their concurrency
	// leases, by function (the step holds them in this process while its body runs, so the
	// sum over processes is the leases in use).
	ConcurrencyLeases *prometheus.GaugeVec
}

// Flow-control decisions (FlowControl's decision label).
const (
	Throttled       = "throttled"
	RateLimited     = "rate_limited"
	Deduplicated    = "deduplicated" // idempotency key
	Buffered        = "buffered"     // into a debounce or batch buffer
	Flushed         = "flushed"      // a debounce or batch buffer started its run
	SingletonSkip   = "singleton_skipped"
	SingletonCancel = "singleton_cancelled"
)

// Names of the metrics workflow code emits through the SDK handler (WorkflowMetrics).
const (
	RunsFinished    = "tempest_runs_finished"     // counter: function, status
	RunDuration     = "tempest_run_duration"      // timer: function, status (from the run's start)
	StepAttempts    = "tempest_step_attempts"     // counter: function, outcome (ok, error)
	StepDuration    = "tempest_step_duration"     // timer: function, outcome
	ConcurrencyWait = "tempest_concurrency_waits" // counter: function
	// ConcurrencyWaitTime: timer, function: from a step's first ask for its concurrency
	// slot to its body starting (steps of functions with concurrency limits).
	ConcurrencyWaitTime = "tempest_concurrency_wait"
)

// runBuckets spans a second to a day; steps use Prometheus' default (5 ms to 10 s).
var runBuckets = prometheus.ExponentialBuckets(0.01, 4, 12)

// New creates an app's metrics, with Go runtime and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{reg: reg, sdk: newSDKHandler(reg)}
	m.EventsReceived = m.counter("tempest_events_received_total", "Events received by the event API, by name (\"other\" when no trigger names it) and outcome (accepted, rejected).", "name", "outcome")
	m.IngestDuration = m.histogram("tempest_ingest_duration_seconds", "Duration of event API requests (POST /e/{key}), by HTTP status code.", prometheus.DefBuckets, "code")
	m.RunsStarted = m.counter("tempest_runs_started_total", "Runs started in Temporal, by function.", "function")
	m.FlowControl = m.counter("tempest_flow_control_total", "Flow-control decisions, by function and decision (throttled, rate_limited, deduplicated, buffered, flushed, singleton_skipped, singleton_cancelled).", "function", "decision")
	m.ThrottleDelay = m.histogram("tempest_throttle_delay_seconds", "How long throttled runs wait for their start slot, by function.", runBuckets, "function")
	m.RedisDuration = m.histogram("tempest_redis_duration_seconds", "Latency of Redis commands (a pipeline counts once, as \"pipeline\"), by command.", prometheus.ExponentialBuckets(0.0001, 4, 10), "command")
	m.WaitsResumed = m.counter("tempest_waits_resumed_total", "Events delivered to what waited for them, by kind: wait (step.waitForEvent resumed) or cancel (a cancelOn rule cancelled its run).", "kind")
	m.WaitsRegistered = prometheus.NewCounter(prometheus.CounterOpts{Name: "tempest_waits_registered_total", Help: "step.WaitForEvent waits that began (registered for their event)."})
	m.reg.MustRegister(m.WaitsRegistered)
	m.ConcurrencyLeases = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tempest_concurrency_leases", Help: "Steps of this process holding their concurrency leases now, by function (sum over processes: leases in use)."}, []string{"function"})
	m.reg.MustRegister(m.ConcurrencyLeases)
	return m
}

func (m *Metrics) counter(name, help string, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	m.reg.MustRegister(v)
	return v
}

func (m *Metrics) histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	m.reg.MustRegister(v)
	return v
}

// Handler serves the registry in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is the app's registry, to register collectors of one's own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SDKHandler is the Temporal client's metrics handler: the SDK's worker and client
// metrics, and what workflow code emits through workflow.GetMetricsHandler.
func (m *Metrics) SDKHandler() client.MetricsHandler { return m.sdk }

// sdkHandler turns the SDK's metrics into Prometheus ones: a counter stays a counter (with
// _total), a gauge a gauge, a timer a histogram in seconds (with _seconds). A metric's label
// names are the tag keys of its first use; later uses fill missing ones with "" and drop
// others.
type sdkHandler struct {
	reg  *prometheus.Registry
	tags map[string]string
	mu   *sync.Mutex
	vecs map[string]any // metric name -> *prometheus.{Counter,Gauge,Histogram}Vec
	keys map[string][]string
}

func newSDKHandler(reg *prometheus.Registry) *sdkHandler {
	return &sdkHandler{reg: reg, tags: map[string]string{}, mu: &sync.Mutex{}, vecs: map[string]any{}, keys: map[string][]string{}}
}

func (h *sdkHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	for k, v := range h.tags {
		merged[k] = v
	}
	for k, v := range tags {
		merged[sanitize(k)] = v
	}
	c := *h
	c.tags = merged
	return &c
}

// sanitize makes s a valid Prometheus name: other characters become "_" (the SDK's names
// and tag keys are valid already: this costs a scan).
func sanitize(s string) string {
	valid := func(i int, c byte) bool {
		return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
	}
	ok := s != ""
	for i := 0; ok && i < len(s); i++ {
		ok = valid(i, s[i])
	}
	if ok {
		return s
	}
	b := []byte(s)
	for i := range b {
		if !valid(i, b[i]) && !(b[i] >= '0' && b[i] <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || (b[0] >= '0' && b[0] <= '9') {
		b = append([]byte{'_'}, b...)
	}
	return string(b)
}

// vec returns the metric's vector (made on first use) and its label values for h's tags.
func (h *sdkHandler) vec(name string, mk func(labels []string) prometheus.Collector) (any, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.vecs[name]
	if !ok {
		keys := make([]string, 0, len(h.tags))
		for k := range h.tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		c := mk(keys)
		if err := h.reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, nil
			}
			c = are.ExistingCollector
		}
		h.vecs[name], h.keys[name] = c, keys
		v = c
	}
	keys := h.keys[name]
	values := make([]string, len(keys))
	for i, k := range keys {
		values[i] = h.tags[k]
	}
	return v, values
}

func (h *sdkHandler) Counter(name string) client.MetricsCounter {
	name = sanitize(name) + "_total"
	v, values := h.vec(name, func(labels []string) prometheus.Collector {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: "Temporal SDK counter " + name + "."}, labels)
	})
	cv, ok := v.(*prometheus.CounterVec)
	if !ok {
		return client.MetricsCounter(nopMetric{})
	}
	c := cv.WithLabelValues(values...)
	return counterFunc(func(d int64) { c.Add(float64(d)) })
}

func (h *sdkHandler) Gauge(name string) client.MetricsGauge {
	name = sanitize(name)
	v, values := h.vec(name, func(labels []string) prometheus.Collector {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: "Temporal SDK gauge " + name + "."}, labels)
	})
	gv, ok := v.(*prometheus.GaugeVec)
	if !ok {
		return nopMetric{}
	}
	g := gv.WithLabelValues(values...)
	return gaugeFunc(g.Set)
}

func (h *sdkHandler) Timer(name string) client.MetricsTimer {
	name = sanitize(name) + "_seconds"
	buckets := prometheus.DefBuckets
	if slices.Contains([]string{RunDuration + "_seconds", ConcurrencyWaitTime + "_seconds"}, name) {
		buckets = runBuckets
	}
	v, values := h.vec(name, func(labels []string) prometheus.Collector {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: "Temporal SDK timer " + name + ".", Buckets: buckets}, labels)
	})
	hv, ok := v.(*prometheus.HistogramVec)
	if !ok {
		return nopMetric{}
	}
	o := hv.WithLabelValues(values...)
	return timerFunc(func(d time.Duration) { o.Observe(d.Seconds()) })
}

type counterFunc func(int64)

func (f counterFunc) Inc(d int64) { f(d) }

type gaugeFunc func(float64)

func (f gaugeFunc) Update(v float64) { f(v) }

type timerFunc func(time.Duration)

func (f timerFunc) Record(d time.Duration) { f(d) }

// nopMetric stands in for a metric whose name is taken by another kind.
type nopMetric struct{}

func (nopMetric) Inc(int64)            {}
func (nopMetric) Update(float64)       {}
func (nopMetric) Record(time.Duration) {}
