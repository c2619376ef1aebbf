package e2e

import (
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkSDKApp measures an SDK app on Tempest (tempest dev's shape) as the issue asks:
// the idle latency from send to the step's start (p50 of 20), the rate steps begin at for
// 1000 events from 8 senders (load.mjs burst), and a 10-step function's run time over its
// steps' own time (10 × 100 ms). Run: go test ./e2e -run '^$' -bench SDKApp -benchtime 1x
func BenchmarkSDKApp(b *testing.B) {
	for range b.N {
		benchSDKApp(b)
	}
}

func benchSDKApp(b *testing.B) {
	tt := b
	s := startTempest(b, nil)
	j := startJS(b, 0, "INNGEST_DEV="+s.base)
	s.sync(tt, j)
	// Idle: one event at a time.
	var lat []float64
	for range 20 {
		before := len(j.state(b).Log)
		t0 := time.Now()
		s.send(tt, "bench/intake", map[string]any{"k": "idle"})
		for {
			st := j.state(b)
			if len(st.Log) > before {
				lat = append(lat, st.Log[len(st.Log)-1]["what"].(float64)-float64(t0.UnixMilli()))
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "idle-ms-p50")
	// Burst: 1000 events from 8 senders, to the SDK function, then to the same function in
	// Go (the baseline: what Tempest does without an app to call).
	burst := func(name string, begun func() int64) float64 {
		base := begun()
		dir, _ := filepath.Abs("js")
		cmd := exec.Command("node", "load.mjs", s.base, "burst", "1000", "8", "--name", name, "--warmup", "0")
		cmd.Dir = dir
		began := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("load.mjs: %v\n%s", err, out)
		}
		for begun() < base+1000 {
			if time.Since(began) > 5*time.Minute {
				b.Fatalf("%s: 1000 runs did not begin within 5 minutes", name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return 1000 / time.Since(began).Seconds()
	}
	sdk := burst("bench/intake", func() int64 { return int64(j.state(b).Counts["bench.start"]) })
	goRate := burst("bench/go", goStepsBegun.Load)
	b.ReportMetric(sdk, "steps-begun/s")
	b.ReportMetric(goRate, "go-steps-begun/s")
	b.ReportMetric(sdk/goRate, "sdk/go")
	// Ten steps of 100 ms in one checkpointed call.
	t0 := time.Now()
	r := s.runs(tt, s.send(tt, "shop/tensteps", nil), 1)[0]
	if r.Status != "Completed" {
		b.Fatalf("tenstep: %s", r.Status)
	}
	b.ReportMetric(time.Since(t0).Seconds()/1.0, "tenstep-run/steps")
}
