package adapter_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/internal/testenv"
)

// scrape GETs /metrics and parses it.
func scrape(t *testing.T, srv *httptest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value is the sum of the samples of a counter (or a histogram's count) whose labels
// include labels.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var sum float64
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetHistogram() != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}

// After a known sequence — 10 events: 2 runs that complete, 2 that fail, 4 for a throttle
// of 1 (3 throttled), 2 for a singleton (1 skipped) — the scraped counters are exact.
func TestMetricsCountAKnownSequence(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	p := app.AppID() + "/"
	mustCreate(t, app, "ok", adapter.EventTrigger(p+"ok", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "work", func(ctx context.Context) (int, error) { return 1, nil })
		})
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "fail", Retries: adapter.Ptr(0)}, adapter.EventTrigger(p+"fail", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "work", func(ctx context.Context) (int, error) { return 0, adapter.NonRetriable(errors.New("no")) })
		}); err != nil {
		t.Fatal(err)
	}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "throttled", Throttle: &adapter.Throttle{Limit: 1, Period: time.Hour}},
		adapter.EventTrigger(p+"thr", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "single", Singleton: &adapter.Singleton{Mode: "skip"}},
		adapter.EventTrigger(p+"single", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return nil, step.Sleep(ctx, "hold", time.Hour)
		}); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()

	ev := func(name string) map[string]any { return map[string]any{"name": p + name} }
	var runs []string
	for _, id := range send(t, app, ev("ok"), ev("ok"), ev("fail"), ev("fail")) {
		runs = append(runs, runsOf(t, app, id)[0].RunID)
	}
	send(t, app, ev("thr"), ev("thr"), ev("thr"), ev("thr"))
	send(t, app, ev("single"))
	send(t, app, ev("single"))
	resp, err := http.Post(srv.URL+"/e/key", "application/json", strings.NewReader(`{"name": ""}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, id := range runs {
		waitRun(t, app, id)
	}

	fn := func(id string) string { return app.AppID() + "-" + id }
	fams := scrape(t, srv)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tempest_events_received_total", map[string]string{"name": p + "ok", "outcome": "accepted"}, 2},
		{"tempest_events_received_total", map[string]string{"name": p + "thr", "outcome": "accepted"}, 4},
		{"tempest_events_received_total", map[string]string{"outcome": "accepted"}, 10},
		{"tempest_events_received_total", map[string]string{"outcome": "rejected"}, 1},
		{"tempest_ingest_duration_seconds", map[string]string{"code": "400"}, 1},
		{"tempest_runs_started_total", map[string]string{"function": fn("ok")}, 2},
		{"tempest_runs_started_total", map[string]string{"function": fn("fail")}, 2},
		{"tempest_runs_started_total", map[string]string{"function": fn("throttled")}, 4},
		{"tempest_runs_started_total", map[string]string{"function": fn("single")}, 1},
		{"tempest_flow_control_total", map[string]string{"function": fn("throttled"), "decision": "throttled"}, 3},
		{"tempest_throttle_delay_seconds", map[string]string{"function": fn("throttled")}, 3},
		{"tempest_flow_control_total", map[string]string{"function": fn("single"), "decision": "singleton_skipped"}, 1},
		{"tempest_runs_finished_total", map[string]string{"function": fn("ok"), "status": "completed"}, 2},
		{"tempest_runs_finished_total", map[string]string{"function": fn("fail"), "status": "failed"}, 2},
		{"tempest_step_attempts_total", map[string]string{"function": fn("ok"), "outcome": "ok"}, 2},
		{"tempest_step_attempts_total", map[string]string{"function": fn("fail"), "outcome": "error"}, 2},
		{"tempest_step_duration_seconds", map[string]string{"function": fn("ok")}, 2},
		{"tempest_run_duration_seconds", map[string]string{"function": fn("fail")}, 2},
	} {
		if got := value(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	backlog := false
	for _, m := range fams["tempest_task_queue_backlog"].GetMetric() {
		for _, l := range m.GetLabel() {
			backlog = backlog || (l.GetName() == "app" && l.GetValue() == app.AppID())
		}
	}
	if !backlog {
		t.Errorf("no tempest_task_queue_backlog for app %s", app.AppID())
	}
	if value(fams, "temporal_request_total", nil) == 0 || value(fams, "go_goroutines", nil) == 0 {
		t.Errorf("the Temporal SDK's and Go's own metrics are missing")
	}
}

// A step holding its concurrency lease shows in tempest_concurrency_leases until it ends,
// and every attempt of a limited function records how long it waited for its slot.
func TestConcurrencyMetrics(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	p := app.AppID() + "/"
	entered, release := make(chan string, 2), make(chan struct{})
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "one-at-a-time", Concurrency: []adapter.Concurrency{{Limit: 1}}},
		adapter.EventTrigger(p+"limited", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "hold", func(ctx context.Context) (int, error) {
				entered <- "in"
				<-release
				return 1, nil
			})
		}); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	fn := map[string]string{"function": app.AppID() + "-one-at-a-time"}

	ids := send(t, app, map[string]any{"name": p + "limited"}, map[string]any{"name": p + "limited"})
	<-entered
	if got := value(scrape(t, srv), "tempest_concurrency_leases", fn); got != 1 {
		t.Fatalf("tempest_concurrency_leases = %v while one step holds the slot, want 1", got)
	}
	close(release)
	for _, id := range ids {
		waitRun(t, app, runsOf(t, app, id)[0].RunID)
	}
	fams := scrape(t, srv)
	if got := value(fams, "tempest_concurrency_leases", fn); got != 0 {
		t.Errorf("tempest_concurrency_leases = %v after the runs ended, want 0", got)
	}
	if got := value(fams, "tempest_concurrency_wait_seconds", fn); got != 2 {
		t.Errorf("tempest_concurrency_wait_seconds counts %v attempts, want 2", got)
	}
}
