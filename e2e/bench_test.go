package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tempestrun/tempest/internal/testenv"
	"go.temporal.io/api/workflowservice/v1"
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
	// Go (the baseline: what Tempest does without an app to call). Each burst also reports
	// the CPU it cost per run: Tempest's (this process: the embedded Temporal, Redis
	// clients, the API, the worker), the app's (node, the SDK) and the load script's, which
	// share the machine's cores: their sum bounds the rate.
	burst := func(name string, begun func() int64) (rate float64, cpu [3]float64) {
		base := begun()
		dir, _ := filepath.Abs("js")
		cmd := exec.Command("node", "load.mjs", s.base, "burst", "1000", "8", "--name", name, "--warmup", "0")
		cmd.Dir = dir
		self0, app0 := processCPU(b, os.Getpid()), processCPU(b, j.cmd.Process.Pid)
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
		rate = 1000 / time.Since(began).Seconds()
		// The runs' ends (and their visibility writes) still run after the last begins.
		s.waitQuiet(b)
		load := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		// Seconds over 1000 runs are milliseconds per run.
		cpu = [3]float64{
			(processCPU(b, os.Getpid()) - self0).Seconds(), (processCPU(b, j.cmd.Process.Pid) - app0).Seconds(), load.Seconds(),
		}
		return rate, cpu
	}
	sdk, sdkCPU := burst("bench/intake", func() int64 { return int64(j.state(b).Counts["bench.start"]) })
	goRate, goCPU := burst("bench/go", goStepsBegun.Load)
	b.ReportMetric(sdk, "steps-begun/s")
	b.ReportMetric(goRate, "go-steps-begun/s")
	b.ReportMetric(sdk/goRate, "sdk/go")
	for i, what := range []string{"tempest", "app", "load"} {
		b.ReportMetric(sdkCPU[i], what+"-cpu-ms/run")
		b.ReportMetric(goCPU[i], "go-"+what+"-cpu-ms/run")
	}
	// Ten steps of 100 ms in one checkpointed call.
	t0 := time.Now()
	r := s.runs(tt, s.send(tt, "shop/tensteps", nil), 1)[0]
	if r.Status != "Completed" {
		b.Fatalf("tenstep: %s", r.Status)
	}
	b.ReportMetric(time.Since(t0).Seconds()/1.0, "tenstep-run/steps")
}

// processCPU is the user and system CPU time process pid has used (Linux /proc).
func processCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name (which is in parentheses and may hold spaces):
	// utime and stime are the 12th and 13th, in clock ticks (100 per second on Linux).
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// waitQuiet returns once no run is open in the namespace (visibility has their close).
func (s *tempest) waitQuiet(tb testing.TB) {
	tb.Helper()
	c, _ := testenv.Services(tb)
	for {
		n, err := c.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: "ExecutionStatus = 'Running'"})
		if err != nil {
			tb.Fatal(err)
		}
		if n.GetCount() == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
