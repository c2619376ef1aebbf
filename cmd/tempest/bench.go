package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/internal/devserver"
)

// benchConfig holds the flags of `tempest bench`.
type benchConfig struct {
	Events      int
	Concurrency int
	Idle        int
	CPUProfile  string
	// ThrottleRate and ThrottleSeconds configure the throttle-accuracy phase (0 skips it).
	ThrottleRate    int
	ThrottleSeconds int
	// SlotRuns runs of a step of SlotStep under a concurrency limit of SlotLimit measure the
	// slot hand-off (0 skips it).
	SlotRuns, SlotLimit int
	SlotStep            time.Duration
	// SplitPollers: workflow-task pollers of the split app's worker (0: the SDK's default).
	SplitPollers int
	// QueuePollRPS of the embedded server (devserver.Options.QueuePollRPS).
	QueuePollRPS int
	// Intake configures the intake phase (bench_intake.go; off by default).
	Intake intakeConfig
}

func (c benchConfig) splitWorker() worker.Options {
	return worker.Options{MaxConcurrentWorkflowTaskPollers: c.SplitPollers}
}

// firstStep records when the first step of each run (keyed by the run's bench key) ran.
type firstStep struct {
	mu   sync.Mutex
	at   map[string]time.Time
	wf   map[string]string // key -> the workflow id of its run (tempest's, for idleAfterClose)
	seen atomic.Int64
	all  chan struct{}
	want int64
}

func (f *firstStep) reset(want int) {
	f.mu.Lock()
	f.at = make(map[string]time.Time, want)
	f.wf = make(map[string]string, want)
	f.mu.Unlock()
	f.seen.Store(0)
	f.want = int64(want)
	f.all = make(chan struct{})
}

func (f *firstStep) mark(key string) {
	now := time.Now()
	f.mu.Lock()
	_, dup := f.at[key]
	if !dup {
		f.at[key] = now
	}
	f.mu.Unlock()
	if !dup && f.seen.Add(1) == f.want {
		close(f.all)
	}
}

// run records the workflow id of key's run (before mark).
func (f *firstStep) run(key, workflowID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wf[key] = workflowID
}

func (f *firstStep) workflowID(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wf[key]
}

func (f *firstStep) get(key string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at[key]
}

var rawMarks, tempestMarks firstStep

func rawStep(_ context.Context, key string) (string, error) {
	rawMarks.mark(key)
	return key, nil
}

// rawWorkflow is the baseline: the same one-step shape as a Tempest function, written
// directly against Temporal (one local activity).
func rawWorkflow(ctx workflow.Context, key string) (string, error) {
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: time.Minute, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var out string
	err := workflow.ExecuteLocalActivity(ctx, rawStep, key).Get(ctx, &out)
	return out, err
}

func benchCmd(ctx context.Context, args []string, out io.Writer) error {
	var cfg benchConfig
	fs := flag.NewFlagSet("tempest bench", flag.ContinueOnError)
	fs.IntVar(&cfg.Events, "events", 2000, "events (and raw workflows) in the throughput phase")
	fs.IntVar(&cfg.Concurrency, "concurrency", 32, "concurrent senders in the throughput phase")
	fs.IntVar(&cfg.Idle, "idle", 200, "sequential sends in the idle-latency phase")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the Tempest throughput phase to this file")
	fs.IntVar(&cfg.ThrottleRate, "throttle-rate", 20, "starts per second of the throttled function in the accuracy phase")
	fs.IntVar(&cfg.ThrottleSeconds, "throttle-seconds", 0, "length of the throttle-accuracy phase in seconds (0 skips it; try 60)")
	fs.IntVar(&cfg.SlotRuns, "slot-runs", 20, "runs in the concurrency hand-off phase (0 skips it)")
	fs.IntVar(&cfg.SlotLimit, "slot-limit", 2, "concurrency limit in the hand-off phase")
	fs.DurationVar(&cfg.SlotStep, "slot-step", 300*time.Millisecond, "step duration in the hand-off phase")
	fs.IntVar(&cfg.SplitPollers, "split-pollers", 0, "workflow-task pollers of the worker-apart app (0: the SDK's default)")
	fs.IntVar(&cfg.QueuePollRPS, "queue-poll-rps", DefaultQueuePollRPS, "the embedded server's history queue reads per second, as tempest dev --queue-poll-rps (20 is Temporal's default)")
	cfg.Intake.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return runBench(ctx, cfg, out)
}

func runBench(ctx context.Context, cfg benchConfig, out io.Writer) error {
	var srv *devserver.Server
	var err error
	withServerLabel(ctx, func(ctx context.Context) {
		srv, err = devserver.Start(ctx, devserver.Options{InMemory: true, Port: -1, SearchAttributes: adapter.SearchAttributes(), QueuePollRPS: cfg.QueuePollRPS})
	})
	if err != nil {
		return err
	}
	defer srv.Stop()
	rdb, redisDesc, closeRedis, err := devRedis()
	if err != nil {
		return err
	}
	defer closeRedis()
	tc, err := client.Dial(client.Options{HostPort: srv.Address(), Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return err
	}
	defer tc.Close()

	// Baseline worker.
	rw := worker.New(tc, "bench-raw", worker.Options{})
	rw.RegisterWorkflowWithOptions(rawWorkflow, workflow.RegisterOptions{Name: "raw-one-step"})
	if err := rw.Start(); err != nil {
		return err
	}
	defer rw.Stop()

	// Tempest: one function with one step, events over HTTP like any client. Its event log
	// is $DATABASE_URL, else a SQLite file of this run's own.
	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		dir, err := os.MkdirTemp("", "tempest-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dbURL = "sqlite:" + filepath.Join(dir, "events.db")
	}
	app, err := adapter.New(ctx, adapter.Options{AppID: "bench", Environment: "tempest-bench", Temporal: tc, Redis: rdb, Dev: true,
		DatabaseURL: dbURL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer app.Close()
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "one-step"}, adapter.EventTrigger("bench/one", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "mark", func(context.Context) (bool, error) {
				k, _ := in.Event.Data["k"].(string)
				tempestMarks.run(k, in.InputCtx.RunID)
				tempestMarks.mark(k)
				return true, nil
			})
		}); err != nil {
		return err
	}
	// The same function behind a throttle that never delays (the cost of the throttle
	// slot), and one that does (its accuracy).
	mark := func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
		return step.Run(ctx, "mark", func(context.Context) (bool, error) {
			k, _ := in.Event.Data["k"].(string)
			tempestMarks.run(k, in.InputCtx.RunID)
			tempestMarks.mark(k)
			return true, nil
		})
	}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "one-step-throttled", Throttle: &adapter.Throttle{Limit: 1 << 30, Period: time.Second}},
		adapter.EventTrigger("bench/throttled", nil), mark); err != nil {
		return err
	}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "rate", Throttle: &adapter.Throttle{Limit: max(cfg.ThrottleRate, 1), Period: time.Second}},
		adapter.EventTrigger("bench/rate", nil), mark); err != nil {
		return err
	}
	// A concurrency limit that never blocks (the cost of the lease around each step), and a
	// debounce per event (the flusher's latency after the due time).
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "leased", Concurrency: []adapter.Concurrency{{Limit: 1 << 20}}},
		adapter.EventTrigger("bench/leased", nil), mark); err != nil {
		return err
	}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "debounced", Debounce: &adapter.Debounce{Period: time.Second, Key: adapter.Ptr("event.data.k")}},
		adapter.EventTrigger("bench/debounced", nil), mark); err != nil {
		return err
	}
	// The split shape: a second app whose worker this process's API has no eager path to
	// (its own client), as when gateways and workers run apart.
	split, err := adapter.New(ctx, adapter.Options{AppID: "bench-split", Environment: "tempest-bench", Temporal: tc, Redis: rdb, Dev: true,
		DatabaseURL: dbURL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Worker: cfg.splitWorker()})
	if err != nil {
		return err
	}
	defer split.Close()
	if _, err := adapter.CreateFunction(split, adapter.FunctionOpts{ID: "one-step"}, adapter.EventTrigger("bench/split", nil), mark); err != nil {
		return err
	}
	sw, err := split.StartWorker(ctx)
	if err != nil {
		return err
	}
	defer sw.Stop()
	slots := &slotMarks{}
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "slotted", Concurrency: []adapter.Concurrency{{Limit: max(cfg.SlotLimit, 1)}}},
		adapter.EventTrigger("bench/slotted", nil), func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "work", func(context.Context) (bool, error) {
				slots.add(&slots.starts)
				time.Sleep(cfg.SlotStep)
				slots.add(&slots.ends)
				return true, nil
			})
		}); err != nil {
		return err
	}
	if cfg.Intake.On {
		if err := prepareIntake(app, cfg.Intake); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	serveCtx, stopServe := context.WithCancel(ctx)
	defer stopServe()
	go app.ServeListener(serveCtx, ln)
	url := "http://" + ln.Addr().String() + "/e/bench"
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency * 2}}

	// The raw baselines: plain StartWorkflow; with eager start (Tempest uses it when its worker
	// is in the process); and the equivalent of Tempest's start, with the same search
	// attributes and summary, whose visibility writes cost the server real work.
	startRaw := func(eager, same bool) func(key string) error {
		return func(key string) error {
			o := client.StartWorkflowOptions{ID: key, TaskQueue: "bench-raw", EnableEagerStart: eager}
			if same {
				o.StaticSummary = "bench-one-step ← bench/one (event " + key + ")"
				o.TypedSearchAttributes = temporal.NewSearchAttributes(
					adapter.SAFunctionID.ValueSet("bench-one-step"), adapter.SAEventID.ValueSet(key), adapter.SAEventName.ValueSet("bench/one"))
			}
			_, err := tc.ExecuteWorkflow(ctx, o, "raw-one-step", key)
			return err
		}
	}
	sendNamed := func(name string) func(key string) error {
		return func(key string) error {
			resp, err := httpc.Post(url, "application/json", strings.NewReader(`{"name":"`+name+`","data":{"k":"`+key+`"}}`))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != 200 {
				return fmt.Errorf("send: HTTP %d", resp.StatusCode)
			}
			return nil
		}
	}
	sendEvent := sendNamed("bench/one")

	fmt.Fprintf(out, "tempest bench: embedded Temporal (SQLite on tmpfs, queue poll rps %d) at %s, Redis %s, GOMAXPROCS %d\n", cmp.Or(cfg.QueuePollRPS, 20), srv.Address(), redisDesc, runtimeProcs())
	// Warm both paths (connections, caches, sticky queues) before measuring.
	if _, err := phase(ctx, "warm-raw", 20, 4, &rawMarks, startRaw(false, false)); err != nil {
		return err
	}
	if _, err := phase(ctx, "warm-tempest", 20, 4, &tempestMarks, sendEvent); err != nil {
		return err
	}
	if cfg.Intake.On { // the intake phase instead of the others (bench_intake.go)
		return intakePhase(ctx, cfg.Intake, app, "http://"+ln.Addr().String(), dbURL, out)
	}
	idleRSS := rssMB()

	fmt.Fprintf(out, "\nIdle latency, %d sequential starts, start call -> first step running:\n", cfg.Idle)
	rawIdle, err := phase(ctx, "idle-raw", cfg.Idle, 1, &rawMarks, startRaw(false, false))
	if err != nil {
		return err
	}
	eagerIdle, err := phase(ctx, "idle-raw-eager", cfg.Idle, 1, &rawMarks, startRaw(true, false))
	if err != nil {
		return err
	}
	sameIdle, err := phase(ctx, "idle-raw-same", cfg.Idle, 1, &rawMarks, startRaw(true, true))
	if err != nil {
		return err
	}
	tIdle, err := phase(ctx, "idle-tempest", cfg.Idle, 1, &tempestMarks, sendEvent)
	if err != nil {
		return err
	}
	// The same, each send after the previous run closed (its system events dispatched and
	// logged, its close written): nothing else runs when the event arrives.
	rawClosed := func(key string) error { return tc.GetWorkflow(ctx, key, "").Get(ctx, nil) }
	tempestClosed := func(key string) error { return tc.GetWorkflow(ctx, tempestMarks.workflowID(key), "").Get(ctx, nil) }
	eagerQuiet, err := idlePhase(ctx, "quiet-raw-eager", cfg.Idle, 1, &rawMarks, startRaw(true, false), rawClosed)
	if err != nil {
		return err
	}
	sameQuiet, err := idlePhase(ctx, "quiet-raw-same", cfg.Idle, 1, &rawMarks, startRaw(true, true), rawClosed)
	if err != nil {
		return err
	}
	tQuiet, err := idlePhase(ctx, "quiet-tempest", cfg.Idle, 1, &tempestMarks, sendEvent, tempestClosed)
	if err != nil {
		return err
	}
	// The split app is routed through the registry: wait until this process sees it.
	for deadline := time.Now().Add(5 * time.Second); !app.Routes("bench-split-one-step"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the split app never reached the registry")
		}
	}
	splitIdle, err := phase(ctx, "idle-split", cfg.Idle, 1, &tempestMarks, sendNamed("bench/split"))
	if err != nil {
		return err
	}
	for _, r := range []struct {
		name string
		res  *phaseResult
	}{{"raw", rawIdle}, {"raw eager", eagerIdle}, {"raw eager + search attrs", sameIdle}, {"Tempest POST /e/{key}", tIdle},
		{"Tempest, worker apart", splitIdle}} {
		fmt.Fprintf(out, "  %-26s p50 %6.1f ms  p95 %6.1f ms  p99 %6.1f ms\n", r.name, r.res.p(50), r.res.p(95), r.res.p(99))
	}
	fmt.Fprintf(out, "  Tempest p50 minus raw p50: %+.1f ms (raw), %+.1f ms (raw eager), %+.1f ms (raw eager + search attrs); worker apart minus raw: %+.1f ms\n",
		tIdle.p(50)-rawIdle.p(50), tIdle.p(50)-eagerIdle.p(50), tIdle.p(50)-sameIdle.p(50), splitIdle.p(50)-rawIdle.p(50))
	fmt.Fprintf(out, "Quiet, each send after the previous run closed:\n")
	for _, r := range []struct {
		name string
		res  *phaseResult
	}{{"raw eager", eagerQuiet}, {"raw eager + search attrs", sameQuiet}, {"Tempest POST /e/{key}", tQuiet}} {
		fmt.Fprintf(out, "  %-26s p50 %6.1f ms  p95 %6.1f ms  p99 %6.1f ms\n", r.name, r.res.p(50), r.res.p(95), r.res.p(99))
	}
	fmt.Fprintf(out, "  Tempest p50 minus raw p50: %+.1f ms (raw eager), %+.1f ms (raw eager + search attrs)\n",
		tQuiet.p(50)-eagerQuiet.p(50), tQuiet.p(50)-sameQuiet.p(50))

	// Measured before the throughput phases, whose runs finish (system events) in the
	// background: one debounce at a time (the flusher's own latency), then 200 keys due at
	// once (a burst, drained at the machine's start rate).
	single, err := phase(ctx, "debounce-single", 20, 1, &tempestMarks, sendNamed("bench/debounced"))
	if err != nil {
		return err
	}
	burst, err := phase(ctx, "debounce-burst", 200, 4, &tempestMarks, sendNamed("bench/debounced"))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nDebounce flush latency, 1 s period, from the due time (send + 1 s) to the run's first step:\n")
	for _, r := range []struct {
		name string
		res  *phaseResult
	}{{"one at a time (20)", single}, {"200 keys due at once", burst}} {
		fmt.Fprintf(out, "  %-22s p50 %6.1f ms  p99 %6.1f ms\n", r.name, r.res.p(50)-1000, r.res.p(99)-1000)
	}

	fmt.Fprintf(out, "\nThroughput, %d starts by %d concurrent senders:\n", cfg.Events, cfg.Concurrency)
	// Each phase under a CPU profile: the server's CPU per run apart from the rest.
	type tput struct {
		name string
		res  *phaseResult
		cpu  cpuUse
	}
	var tputs []*tput
	for _, b := range []struct {
		name, phase, profile string
		marks                *firstStep
		start                func(string) error
	}{
		{"raw", "tput-raw", "", &rawMarks, startRaw(false, false)},
		{"raw eager", "tput-raw-eager", "", &rawMarks, startRaw(true, false)},
		{"raw eager + search attrs", "tput-raw-same", "", &rawMarks, startRaw(true, true)},
		{"Tempest POST /e/{key}", "tput-tempest", cfg.CPUProfile, &tempestMarks, sendEvent},
	} {
		t := &tput{name: b.name}
		var err error
		t.cpu, err = profiled(b.profile, cfg.Events, func() error {
			t.res, err = phase(ctx, b.phase, cfg.Events, cfg.Concurrency, b.marks, b.start)
			return err
		})
		if err != nil {
			return err
		}
		tputs = append(tputs, t)
	}
	tem := tputs[3]
	for _, r := range tputs {
		fmt.Fprintf(out, "  %-26s accepted %7.1f/s  first steps run %7.1f/s  latency p50 %6.1f ms  p99 %7.1f ms  CPU/run: server %.2f ms, process %.2f ms\n",
			r.name, r.res.acceptRate(), r.res.e2eRate(), r.res.p(50), r.res.p(99), r.cpu.serverPerRun(), r.cpu.totalPerRun())
	}
	for _, b := range tputs[:3] {
		fmt.Fprintf(out, "  Tempest / %-24s first steps run %.2f   accepted %.2f   server CPU per run %.2f   process CPU per run %.2f\n", b.name+":",
			tem.res.e2eRate()/b.res.e2eRate(), tem.res.acceptRate()/b.res.acceptRate(), tem.cpu.serverPerRun()/b.cpu.serverPerRun(), tem.cpu.totalPerRun()/b.cpu.totalPerRun())
	}
	throttled, err := phase(ctx, "tput-throttled", cfg.Events, cfg.Concurrency, &tempestMarks, sendNamed("bench/throttled"))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  %-26s accepted %7.1f/s  first steps run %7.1f/s  (%.2f of unthrottled)\n",
		"Tempest, throttle slot", throttled.acceptRate(), throttled.e2eRate(), throttled.e2eRate()/tem.res.e2eRate())

	leased, err := phase(ctx, "tput-leased", cfg.Events, cfg.Concurrency, &tempestMarks, sendNamed("bench/leased"))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  %-26s accepted %7.1f/s  first steps run %7.1f/s  (%.2f of unlimited)\n",
		"Tempest, concurrency lease", leased.acceptRate(), leased.e2eRate(), leased.e2eRate()/tem.res.e2eRate())

	if cfg.SlotRuns > 0 {
		if err := slotPhase(ctx, app, cfg, slots, out); err != nil {
			return err
		}
	}

	if cfg.ThrottleSeconds > 0 {
		n := cfg.ThrottleRate * (cfg.ThrottleSeconds + 1) // the first second is the burst from idle
		fmt.Fprintf(out, "\nThrottle accuracy: %d events at once to a function throttled to %d/s:\n", n, cfg.ThrottleRate)
		res, err := phase(ctx, "throttle-rate", n, cfg.Concurrency, &tempestMarks, sendNamed("bench/rate"))
		if err != nil {
			return err
		}
		starts := make([]time.Time, 0, n)
		for _, k := range res.keys {
			starts = append(starts, tempestMarks.get(k))
		}
		slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
		// Measure once every event is accepted: starts during the sends are late by the
		// load of sending, which would shorten the span and inflate the rate.
		i := sort.Search(len(starts), func(i int) bool { return starts[i].After(res.sentAt.Add(time.Second)) })
		steady := starts[i:]
		if len(steady) < 2 {
			return fmt.Errorf("throttle phase: too short to measure; raise --throttle-seconds")
		}
		span := steady[len(steady)-1].Sub(steady[0])
		measured := float64(len(steady)-1) / span.Seconds()
		fmt.Fprintf(out, "  measured %.2f starts/s over %s (configured %d/s): %+.2f %%\n",
			measured, span.Round(time.Millisecond), cfg.ThrottleRate, (measured/float64(cfg.ThrottleRate)-1)*100)
	}

	fmt.Fprintf(out, "\nResident memory of this process (embedded Temporal + Tempest, as in `tempest dev`): idle %d MB, after the run %d MB\n", idleRSS, rssMB())
	return nil
}

type phaseResult struct {
	keys     []string
	sentAt   time.Time // when the last send was accepted
	lat      []float64 // ms, sorted
	accepted time.Duration
	e2e      time.Duration
	n        int
}

func (r *phaseResult) p(q float64) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(q / 100 * float64(len(r.lat)-1))
	return r.lat[i]
}
func (r *phaseResult) acceptRate() float64 { return float64(r.n) / r.accepted.Seconds() }
func (r *phaseResult) e2eRate() float64    { return float64(r.n) / r.e2e.Seconds() }

// phase starts n runs with conc senders and waits until every first step has run.
func phase(ctx context.Context, name string, n, conc int, marks *firstStep, start func(key string) error) (*phaseResult, error) {
	return idlePhase(ctx, name, n, conc, marks, start, nil)
}

// idlePhase is phase with, when conc is 1 and closed is set, a wait for each run to close
// (closed(key)) before the next send: every send then meets an idle system, where phase
// sends the next event while the previous run is still finishing.
func idlePhase(ctx context.Context, name string, n, conc int, marks *firstStep, start func(key string) error, closed func(key string) error) (*phaseResult, error) {
	marks.reset(n)
	sent := make([]time.Time, n)
	keys := make([]string, n)
	stamp := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := range keys {
		keys[i] = name + "-" + stamp + "-" + strconv.Itoa(i)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, conc)
	began := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				sent[i] = time.Now()
				if err := start(keys[i]); err != nil {
					errc <- fmt.Errorf("%s: %w", name, err)
					return
				}
				if conc == 1 { // idle: wait for this run's first step before the next send
					for marks.get(keys[i]).IsZero() {
						select {
						case <-ctx.Done():
							return
						case <-time.After(200 * time.Microsecond):
						}
					}
					if closed != nil {
						if err := closed(keys[i]); err != nil {
							errc <- fmt.Errorf("%s: waiting for run %s to close: %w", name, keys[i], err)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	accepted := time.Since(began)
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	select {
	case <-marks.all:
	case <-time.After(15 * time.Minute):
		return nil, fmt.Errorf("%s: only %d of %d first steps ran within 15 minutes", name, marks.seen.Load(), n)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res := &phaseResult{keys: keys, sentAt: began.Add(accepted), accepted: accepted, e2e: time.Since(began), n: n}
	for i, k := range keys {
		res.lat = append(res.lat, float64(marks.get(k).Sub(sent[i]).Microseconds())/1000)
	}
	slices.Sort(res.lat)
	return res, nil
}

func rssMB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb / 1024
		}
	}
	return -1
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// slotMarks records when the steps of the hand-off phase started and ended.
type slotMarks struct {
	mu           sync.Mutex
	starts, ends []time.Time
}

func (m *slotMarks) add(to *[]time.Time) {
	m.mu.Lock()
	*to = append(*to, time.Now())
	m.mu.Unlock()
}

// slotPhase measures a busy concurrency limit: throughput against the ideal Limit/step
// duration, and how long a waiting step starts after a slot is freed.
func slotPhase(ctx context.Context, app *adapter.App, cfg benchConfig, m *slotMarks, out io.Writer) error {
	evs := make([]any, cfg.SlotRuns)
	for i := range evs {
		evs[i] = map[string]any{"name": "bench/slotted", "data": map[string]any{}}
	}
	ids, err := app.Send(ctx, evs...)
	if err != nil {
		return err
	}
	for _, id := range ids {
		runs, err := app.EventRuns(ctx, id)
		if err != nil || len(runs) != 1 {
			return fmt.Errorf("hand-off phase: runs of %s: %v %v", id, runs, err)
		}
		if err := app.Temporal().GetWorkflow(ctx, runs[0].RunID, "").Get(ctx, nil); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	starts, ends := slices.Clone(m.starts), slices.Clone(m.ends)
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	limit := max(cfg.SlotLimit, 1)
	elapsed := ends[len(ends)-1].Sub(starts[0])
	ideal := float64(limit) / cfg.SlotStep.Seconds()
	got := float64(len(starts)) / elapsed.Seconds()
	// The k-th step after the first Limit takes the slot the k-th finished step freed.
	var lat []float64
	for i := limit; i < len(starts); i++ {
		lat = append(lat, float64(starts[i].Sub(ends[i-limit]).Microseconds())/1000)
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Fprintf(out, "\nConcurrency hand-off: %d runs of one %s step, limit %d:\n", len(starts), cfg.SlotStep, limit)
	fmt.Fprintf(out, "  took %s (ideal %s): %.2f steps/s = %.2f of Limit/step duration\n",
		elapsed.Round(time.Millisecond), (time.Duration(len(starts)) * cfg.SlotStep / time.Duration(limit)).Round(time.Millisecond), got, got/ideal)
	fmt.Fprintf(out, "  slot freed -> next step starts: p50 %.1f ms  p99 %.1f ms  max %.1f ms\n", q(0.5), q(0.99), lat[len(lat)-1])
	return nil
}
