package metrics

import "testing"

// BenchmarkSDKCounter is what a counter costs through the SDK handler, as workflow code
// and the SDK call it (tags, then the counter, then Inc), against a Prometheus counter's
// Inc (the baseline, in the same run):
//
//	go test ./internal/metrics -run '^$' -bench . -benchmem
func BenchmarkSDKCounter(b *testing.B) {
	m := New()
	b.Run("prometheus-inc", func(b *testing.B) {
		c := m.RunsStarted.WithLabelValues("app-fn")
		for b.Loop() {
			c.Inc()
		}
	})
	b.Run("prometheus-with-labels", func(b *testing.B) {
		for b.Loop() {
			m.RunsStarted.WithLabelValues("app-fn").Inc()
		}
	})
	b.Run("sdk-handler-with-tags", func(b *testing.B) {
		h := m.SDKHandler().WithTags(map[string]string{"namespace": "default", "task_queue": "tempest-app", "workflow_type": "app-fn"})
		for b.Loop() {
			h.WithTags(map[string]string{"function": "app-fn", "status": "completed"}).Counter(RunsFinished).Inc(1)
		}
	})
}
