package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/google/pprof/profile"
)

// The embedded Temporal server runs in the bench's own process; its goroutines carry the
// profiler label serverLabel (set around devserver.Start and inherited by every goroutine
// the server starts), so a CPU profile of a phase tells the server's CPU apart from the
// rest: the raw worker and client, or Tempest's API, event log, dispatch and worker. The
// Go runtime's own work (GC) carries no label and counts in the process total only.
const serverLabel = "temporal-server"

// cpuUse is the CPU a phase used, from its first send until the process was quiet again
// (its runs closed, their visibility written).
type cpuUse struct {
	server, total time.Duration
	n             int
}

func (c cpuUse) serverPerRun() float64 { return float64(c.server.Microseconds()) / 1000 / float64(c.n) }
func (c cpuUse) totalPerRun() float64  { return float64(c.total.Microseconds()) / 1000 / float64(c.n) }

// profiled runs fn (a phase of n runs) under a CPU profile, waits for the process to go
// quiet, and returns the CPU used; with keep set it also writes the profile there.
func profiled(keep string, n int, fn func() error) (cpuUse, error) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		return cpuUse{}, err
	}
	err := fn()
	if err == nil {
		settle()
	}
	pprof.StopCPUProfile()
	if err != nil {
		return cpuUse{}, err
	}
	if keep != "" {
		if err := os.WriteFile(keep, buf.Bytes(), 0o644); err != nil {
			return cpuUse{}, err
		}
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		return cpuUse{}, fmt.Errorf("read CPU profile: %w", err)
	}
	i := len(p.SampleType) - 1 // cpu, nanoseconds
	use := cpuUse{n: n}
	for _, s := range p.Sample {
		d := time.Duration(s.Value[i])
		use.total += d
		for _, v := range s.Label["component"] {
			if v == serverLabel {
				use.server += d
			}
		}
	}
	return use, nil
}

// settle waits, up to 20 s, until the process used under 5 % of a core for 200 ms: the
// work a phase left behind (runs finishing, visibility, system events) is then done.
func settle() {
	last := processCPU()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		now := processCPU()
		if now-last < 10*time.Millisecond {
			return
		}
		last = now
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// withServerLabel runs fn with the server's profiler label on its goroutine.
func withServerLabel(ctx context.Context, fn func(context.Context)) {
	pprof.Do(ctx, pprof.Labels("component", serverLabel), fn)
}
