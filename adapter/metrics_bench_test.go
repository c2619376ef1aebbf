package adapter_test

import (
	"context"
	"fmt"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/internal/testenv"
)

// BenchmarkMetricsOverhead is the ingest and dispatch path (Send: events into the log,
// dispatched, their runs started) and the runs' execution, with metrics and tracing on and
// off, in one
// run, in ABBA order: the budget is on within 5 % of off.
//
//	go test ./adapter -run '^$' -bench MetricsOverhead -benchtime 200x -count 4
func BenchmarkMetricsOverhead(b *testing.B) {
	apps := map[string]*adapter.App{
		"off": testenv.App(b, func(o *adapter.Options) { o.DisableMetrics = true }),
		// Tracing on too: every span recorded and batched to an exporter that drops them.
		"on": testenv.App(b, func(o *adapter.Options) {
			o.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		}),
	}
	for _, app := range apps {
		mustCreate(b, app, "work", adapter.EventTrigger("bench/metrics", nil),
			func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
				return step.Run(ctx, "one", func(ctx context.Context) (int, error) { return 1, nil })
			})
		testenv.StartWorker(b, app)
	}
	batch := make([]any, 20)
	for i := range batch {
		batch[i] = map[string]any{"name": "bench/metrics", "data": map[string]any{"i": i}}
	}
	// ABBA order: the embedded server slows as its SQLite grows, so neither side runs
	// only last.
	for i, name := range []string{"off", "on", "on", "off"} {
		app := apps[name]
		b.Run(fmt.Sprintf("%s-%d", name, i/2+1), func(b *testing.B) {
			for b.Loop() {
				if _, err := app.Send(context.Background(), batch...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
		})
	}
}
