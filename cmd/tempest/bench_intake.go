package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
)

// The intake phase of `tempest bench` (issue 10): the official JS SDK, in its own node
// process (e2e/js/load.mjs), sends batches and a burst of single events to Tempest's event
// API, which answers once the events are committed to the event log, and to a bare
// net/http server answering at once (what the client and HTTP cost alone on this machine).

// intakeEvent is the event of the intake phase; intakeFunction, subscribed to it, gives
// every event a run.
const (
	intakeEvent    = "bench/intake"
	intakeFunction = "intake"
)

// The goals of issue 10.
const (
	goalBatchRate  = 3000 // events/s accepted, 10 send()s of 500 events
	goalBatchP50   = 200  // ms
	goalBurstP50   = 50   // ms, 4000 single-event send()s from 32 senders
	goalBurstP99   = 150  // ms
	intakeDrainMax = 15 * time.Minute
)

// intakeConfig holds the flags of the intake phase.
type intakeConfig struct {
	On                           bool
	JSDir                        string
	BatchRequests, BatchEvents   int
	BurstSends, BurstConcurrency int
	CPUProfile                   string
}

func (c *intakeConfig) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.On, "intake", false, "run the intake phase instead of the others: the Inngest JS SDK, in its own node process, sends batches and a burst of single events to /e/{key} and to a bare net/http baseline (acceptance: events/s and send() latency); needs node, and npm install run in --js-dir")
	fs.StringVar(&c.JSDir, "js-dir", "e2e/js", "directory of load.mjs and the inngest npm package (node_modules), for the intake phase")
	fs.IntVar(&c.BatchRequests, "intake-batch-requests", 10, "intake phase: sequential send()s of the batch test")
	fs.IntVar(&c.BatchEvents, "intake-batch-events", 500, "intake phase: events per send() of the batch test")
	fs.IntVar(&c.BurstSends, "intake-burst-sends", 4000, "intake phase: single-event send()s of the burst test")
	fs.IntVar(&c.BurstConcurrency, "intake-burst-concurrency", 32, "intake phase: concurrent senders of the burst test")
	fs.StringVar(&c.CPUProfile, "intake-cpuprofile", "", "intake phase: write CPU profiles of this process during Tempest's batch and burst sends to <this>.batch and <this>.burst")
}

// intakeRuns counts the first steps of the intake function's runs, once per event key.
type intakeRuns struct {
	mu   sync.Mutex
	seen map[string]bool
	n    atomic.Int64
}

func (r *intakeRuns) reset() {
	r.mu.Lock()
	r.seen = map[string]bool{}
	r.mu.Unlock()
	r.n.Store(0)
}

func (r *intakeRuns) mark(key string) {
	r.mu.Lock()
	dup := r.seen[key]
	r.seen[key] = true
	r.mu.Unlock()
	if !dup {
		r.n.Add(1)
	}
}

var intakeMarks intakeRuns

// prepareIntake checks that the JS client can run and subscribes the intake function to
// intakeEvent; call it before the app serves.
func prepareIntake(app *adapter.App, c intakeConfig) error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("intake phase: node is not on PATH (it runs the Inngest JS SDK): %w", err)
	}
	if _, err := os.Stat(filepath.Join(c.JSDir, "load.mjs")); err != nil {
		return fmt.Errorf("intake phase: no load.mjs in --js-dir %q (run tempest bench from the repository's root, or pass --js-dir): %w", c.JSDir, err)
	}
	if _, err := os.Stat(filepath.Join(c.JSDir, "node_modules", "inngest", "package.json")); err != nil {
		return fmt.Errorf("intake phase: the inngest npm package is not installed in %q: run `npm install` there: %w", c.JSDir, err)
	}
	intakeMarks.reset()
	_, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: intakeFunction}, adapter.EventTrigger(intakeEvent, nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "mark", func(context.Context) (bool, error) {
				k, _ := in.Event.Data["k"].(string)
				intakeMarks.mark(k)
				return true, nil
			})
		})
	return err
}

// loadResult is the JSON line load.mjs prints.
type loadResult struct {
	Mode         string  `json:"mode"`
	Sends        int     `json:"sends"`
	Events       int     `json:"events"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"eventsPerSec"`
	P50          float64 `json:"p50ms"`
	P90          float64 `json:"p90ms"`
	P99          float64 `json:"p99ms"`
	Max          float64 `json:"maxms"`
	Errors       int     `json:"errors"`
	WarmupEvents int     `json:"warmupEvents"`
	WarmupErrors int     `json:"warmupErrors"`
	FirstError   string  `json:"firstError"`
}

// runLoad runs load.mjs against baseURL.
func runLoad(ctx context.Context, c intakeConfig, baseURL, prefix string, args ...string) (*loadResult, error) {
	args = append([]string{"load.mjs", baseURL}, args...)
	args = append(args, "--name", intakeEvent, "--prefix", prefix)
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = c.JSDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("node %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var r loadResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return nil, fmt.Errorf("node %s: unreadable output %q: %w\n%s", strings.Join(args, " "), stdout.String(), err, stderr.String())
	}
	return &r, nil
}

// baselineServer answers every POST at once with as many ids as the request has events,
// as /e/{key} does, without doing anything with them.
func baselineServer(ctx context.Context) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n := 1
		if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '[' {
			var evs []json.RawMessage
			if err := json.Unmarshal(b, &evs); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			n = len(evs)
		}
		ids := make([]string, n)
		for i := range ids {
			ids[i] = ulid.Make().String()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"ids": ids, "status": 200})
	})}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Shutdown(context.WithoutCancel(ctx)) }, nil
}

// eventLogDesc describes the event log of dbURL, without a password.
func eventLogDesc(dbURL string) string {
	if p, ok := strings.CutPrefix(dbURL, "sqlite:"); ok {
		return "SQLite file " + p + " (WAL, synchronous=FULL)"
	}
	if u, err := url.Parse(dbURL); err == nil && u.Host != "" {
		return "PostgreSQL " + u.Redacted()
	}
	return "PostgreSQL (DATABASE_URL)"
}

func sdkVersion(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "inngest", "package.json"))
	if err != nil {
		return "?"
	}
	var p struct{ Version string }
	_ = json.Unmarshal(b, &p)
	return p.Version
}

func nodeVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "node", "--version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

// waitIntakeRuns waits until want first steps of the intake function have run, then until
// none of its runs is still running, so the next phase starts on a quiet machine.
func waitIntakeRuns(ctx context.Context, app *adapter.App, want int64) (time.Duration, error) {
	began := time.Now()
	deadline := began.Add(intakeDrainMax)
	for intakeMarks.n.Load() < want {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("intake phase: only %d of %d first steps ran within %s", intakeMarks.n.Load(), want, intakeDrainMax)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	firstSteps := time.Since(began)
	q := fmt.Sprintf("WorkflowType = '%s-%s' AND ExecutionStatus = 'Running'", app.AppID(), intakeFunction)
	for {
		res, err := app.Temporal().CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: "default", Query: q})
		if err != nil {
			return 0, fmt.Errorf("intake phase: count running runs: %w", err)
		}
		if res.GetCount() == 0 {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("intake phase: %d runs still running after %s", res.GetCount(), intakeDrainMax)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return firstSteps, nil
}

// intakePhase runs the batch and burst tests against the baseline and then Tempest (whose
// event API is served at tempestURL), and prints the table.
func intakePhase(ctx context.Context, c intakeConfig, app *adapter.App, tempestURL, dbURL string, out io.Writer) error {
	baseURL, stopBase, err := baselineServer(ctx)
	if err != nil {
		return err
	}
	defer stopBase()
	fmt.Fprintf(out, "\nIntake: the Inngest JS SDK %s (node %s, its own process) -> POST /e/{key}; event log: %s\n",
		sdkVersion(c.JSDir), nodeVersion(ctx), eventLogDesc(dbURL))

	tests := []struct {
		name string
		args []string
	}{
		{fmt.Sprintf("batch: %d send()s of %d events, one after the other", c.BatchRequests, c.BatchEvents),
			[]string{"batch", strconv.Itoa(c.BatchRequests), strconv.Itoa(c.BatchEvents)}},
		{fmt.Sprintf("burst: %d single-event send()s, %d concurrent senders", c.BurstSends, c.BurstConcurrency),
			[]string{"burst", strconv.Itoa(c.BurstSends), strconv.Itoa(c.BurstConcurrency)}},
	}
	type pair struct{ tempest, base *loadResult }
	results := make([]pair, len(tests))
	stamp := strconv.FormatInt(time.Now().UnixNano(), 36)
	// The baseline first: nothing of Tempest's runs in the background then.
	for i, t := range tests {
		r, err := runLoad(ctx, c, baseURL, "base-"+stamp, t.args...)
		if err != nil {
			return err
		}
		results[i].base = r
	}
	var drains []string
	for i, t := range tests {
		intakeMarks.reset()
		stopProfile := func() {}
		if c.CPUProfile != "" {
			f, err := os.Create(c.CPUProfile + "." + t.args[0])
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				f.Close()
				return err
			}
			stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
		}
		r, err := runLoad(ctx, c, tempestURL, t.args[0]+"-"+stamp, t.args...)
		stopProfile()
		if err != nil {
			return err
		}
		results[i].tempest = r
		// Every accepted event starts a run: wait for all of them before going on.
		want := int64(r.Events + r.WarmupEvents)
		began := time.Now()
		firstSteps, err := waitIntakeRuns(ctx, app, want)
		if err != nil {
			return err
		}
		drains = append(drains, fmt.Sprintf("%s: the last of %d runs' first steps ran %.1f s after the last send() (%.0f first steps/s over send + drain), all runs done %.1f s after it",
			t.args[0], want, firstSteps.Seconds(), float64(want)/(r.Seconds+firstSteps.Seconds()), time.Since(began).Seconds()))
	}

	fmt.Fprintf(out, "  %-58s %-9s %10s %9s %9s %9s %7s\n", "", "", "events/s", "p50 ms", "p90 ms", "p99 ms", "errors")
	for i, t := range tests {
		tr, br := results[i].tempest, results[i].base
		fmt.Fprintf(out, "  %-58s %-9s %10.1f %9.1f %9.1f %9.1f %7d\n", t.name, "Tempest", tr.EventsPerSec, tr.P50, tr.P90, tr.P99, tr.Errors)
		fmt.Fprintf(out, "  %-58s %-9s %10.1f %9.1f %9.1f %9.1f %7d\n", "", "baseline", br.EventsPerSec, br.P50, br.P90, br.P99, br.Errors)
		fmt.Fprintf(out, "  %-58s %-9s %10.2f %9.2f %9.2f %9.2f\n", "", "ratio", tr.EventsPerSec/br.EventsPerSec, tr.P50/br.P50, tr.P90/br.P90, tr.P99/br.P99)
		for _, r := range []*loadResult{tr, br} {
			if r.Errors+r.WarmupErrors > 0 {
				fmt.Fprintf(out, "  %-58s %d send()s failed (%d in the warm-up): %s\n", "", r.Errors+r.WarmupErrors, r.WarmupErrors, r.FirstError)
			}
		}
	}
	fmt.Fprintf(out, "  (baseline: a bare net/http server in this process answering {\"ids\":[...],\"status\":200} at once; ratio: Tempest / baseline)\n")
	batch, burst := results[0].tempest, results[1].tempest
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(out, "  Goals (issue 10: 10 send()s of 500 events; 4000 single-event send()s from 32 senders):\n")
	if c.BatchRequests != 10 || c.BatchEvents != 500 || c.BurstSends != 4000 || c.BurstConcurrency != 32 {
		fmt.Fprintf(out, "    (measured with other sizes than the goals'; compare with care)\n")
	}
	fmt.Fprintf(out, "    batch accepted  ≥ %d events/s: %8.1f  %s\n", goalBatchRate, batch.EventsPerSec, met(batch.EventsPerSec >= goalBatchRate && batch.Errors == 0))
	fmt.Fprintf(out, "    batch send() p50 ≤ %d ms:      %8.1f  %s\n", goalBatchP50, batch.P50, met(batch.P50 <= goalBatchP50 && batch.Errors == 0))
	fmt.Fprintf(out, "    burst send() p50 ≤ %d ms:       %8.1f  %s\n", goalBurstP50, burst.P50, met(burst.P50 <= goalBurstP50 && burst.Errors == 0))
	fmt.Fprintf(out, "    burst send() p99 ≤ %d ms:      %8.1f  %s\n", goalBurstP99, burst.P99, met(burst.P99 <= goalBurstP99 && burst.Errors == 0))
	for _, d := range drains {
		fmt.Fprintf(out, "  Drain, %s\n", d)
	}
	if batch.Errors+burst.Errors > 0 {
		return errors.New("intake phase: some send()s to Tempest failed")
	}
	return nil
}
