// Package crashtest kills Tempest processes with SIGKILL under load and checks that
// nothing acknowledged is lost: the test binary re-executes itself as the Tempest process
// (event API + worker) against the test's embedded Temporal server and the real Redis.
package crashtest

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/internal/testenv"
)

// The child process's environment.
const (
	envChild    = "TEMPEST_CRASHTEST_CHILD"
	envAddr     = "TEMPEST_CRASHTEST_ADDR"
	envTemporal = "TEMPEST_CRASHTEST_TEMPORAL"
	envApp      = "TEMPEST_CRASHTEST_APP"
	envEnv      = "TEMPEST_CRASHTEST_ENV"
	// envFunctions: "" both functions (event API + worker in one process), "none" a
	// gateway, or one function's id (an app's worker, no event API).
	envFunctions = "TEMPEST_CRASHTEST_FUNCTIONS"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		if err := child(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// functions are the two functions every event fans out to.
var functions = []string{"left", "right"}

func define(app *adapter.App, only ...string) error {
	for _, id := range only {
		if limits[id] != nil {
			if err := limits[id](app); err != nil {
				return err
			}
		}
	}
	for _, id := range functions {
		if len(only) > 0 && !slices.Contains(only, id) {
			continue
		}
		if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: id}, adapter.EventTrigger("crash/order", nil),
			func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
				return step.Run(ctx, "work", func(context.Context) (string, error) { return id, nil })
			}); err != nil {
			return err
		}
	}
	return nil
}

// child serves the event API and runs the worker until it is killed (or only one of them,
// per envFunctions).
func child() error {
	ctx := context.Background()
	tc, err := client.Dial(client.Options{HostPort: os.Getenv(envTemporal), Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return err
	}
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		return err
	}
	env := cmp.Or(os.Getenv(envEnv), os.Getenv(envApp))
	app, err := adapter.New(ctx, adapter.Options{AppID: os.Getenv(envApp), Environment: env, Temporal: tc, Redis: redis.NewClient(opts), Dev: true,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	switch fns := os.Getenv(envFunctions); fns {
	case "none": // a gateway: the event API only
	case "":
		if err := define(app); err != nil {
			return err
		}
	default: // an app: its worker only
		if err := define(app, strings.Split(fns, ",")...); err != nil {
			return err
		}
		if _, err := app.StartWorker(ctx); err != nil {
			return err
		}
		fmt.Println("ready")
		select {}
	}
	ln, err := net.Listen("tcp", os.Getenv(envAddr))
	if err != nil {
		return err
	}
	fmt.Println("ready") // the port is bound: requests wait in its backlog until Serve
	return app.ServeListener(ctx, ln)
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startChild(t *testing.T, addr, temporal, appID string, extraEnv ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envAddr+"="+addr, envTemporal+"="+temporal, envApp+"="+appID)
	cmd.Env = append(cmd.Env, extraEnv...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := sc.Scan() && sc.Text() == "ready"
		ready <- ok
		for sc.Scan() {
		}
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-p.done })
	select {
	case ok := <-ready:
		if !ok {
			<-p.done
			t.Fatalf("child did not start: %s", stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("child did not start within 60s: %s", stderr.String())
	}
	return p
}

// Senders post events with their own ids and no seed (a plain HTTP client), and retry each
// until it is answered 200, while the Tempest process is killed with SIGKILL and restarted
// three times. Every acknowledged event must then have exactly one completed run in each of
// the two functions it fans out to.
func TestKilledProcessLosesNoAcknowledgedEvent(t *testing.T) {
	tc, _ := testenv.Services(t)
	temporal := testenv.Server().Address()
	appID := fmt.Sprintf("crash-%d", time.Now().UnixNano()%1e9)
	t.Cleanup(func() { testenv.DropEnvironment(appID) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// The event log survives the kills: one SQLite file, as tempest dev keeps it.
	dbURL := sqliteLog(t)
	p := startChild(t, addr, temporal, appID, "DATABASE_URL="+dbURL)

	const events, kills = 600, 3
	load := sendLoad(addr, appID, events, 5*time.Second)
	for k := range kills {
		// Kill once another share of the events has been acknowledged: mid-load.
		load.waitAcked(int64((k + 1) * events / (kills + 2)))
		_ = p.cmd.Process.Kill()
		<-p.done
		p = startChild(t, addr, temporal, appID, "DATABASE_URL="+dbURL)
	}
	acks, retries := load.wait()

	// Check from a process of our own on the same Redis and Temporal.
	_, rdb := testenv.Services(t)
	checkRuns(t, tc, rdb, appID, dbURL, acks, fmt.Sprintf("through %d kills of the Tempest process (%d retried requests)", kills, retries))
}

type ack struct{ clientID, internal string }

// sqliteLog is an event log file of the test's own.
func sqliteLog(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "events.db") }

// load is senders posting events with their own ids and no seed, each retried until it is
// answered 200.
type load struct {
	acks    []ack
	acked   atomic.Int64
	retries atomic.Int64
	wg      sync.WaitGroup
}

// timeout bounds each request: a client that gives up cancels the ingest in flight.
func sendLoad(addr, appID string, events int, timeout time.Duration) *load {
	return sendLoadTo([]string{addr}, appID, events, timeout)
}

// sendLoadTo spreads the sends over several gateways; a failed send is retried on the next.
func sendLoadTo(addrs []string, appID string, events int, timeout time.Duration) *load {
	const senders = 8
	l := &load{acks: make([]ack, events)}
	next := make(chan int, events)
	for i := range events {
		next <- i
	}
	close(next)
	httpc := &http.Client{Timeout: timeout}
	for range senders {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := range next {
				id := fmt.Sprintf("%s-order-%d", appID, i)
				body := fmt.Sprintf(`{"name":"crash/order","id":%q,"data":{"n":%d}}`, id, i)
				for attempt := i; ; attempt++ {
					resp, err := httpc.Post("http://"+addrs[attempt%len(addrs)]+"/e/key", "application/json", bytes.NewReader([]byte(body)))
					if err == nil {
						var out struct {
							IDs    []string `json:"ids"`
							Status int      `json:"status"`
						}
						derr := json.NewDecoder(resp.Body).Decode(&out)
						resp.Body.Close()
						if derr == nil && out.Status == 200 && len(out.IDs) == 1 {
							l.acks[i] = ack{id, out.IDs[0]}
							l.acked.Add(1)
							break
						}
					}
					l.retries.Add(1)
					time.Sleep(20 * time.Millisecond) // a part is restarting: back off a little
				}
			}
		}()
	}
	return l
}

func (l *load) waitAcked(n int64) {
	for l.acked.Load() < n {
		time.Sleep(time.Millisecond)
	}
}

func (l *load) wait() ([]ack, int64) {
	l.wg.Wait()
	return l.acks, l.retries.Load()
}

// checkRuns fails the test unless every acknowledged event lists a completed run in each
// function.
func checkRuns(t *testing.T, tc client.Client, rdb redis.UniversalClient, appID, dbURL string, acks []ack, how string) {
	t.Helper()
	lost, partial := missingRuns(t, newChecker(t, tc, rdb, appID, dbURL), tc, acks)
	t.Logf("%d events acknowledged %s: %d without runs, %d with only some of their runs", len(acks), how, lost, partial)
	if lost+partial > 0 {
		t.Fatalf("%d acknowledged events have no run, %d miss a function's run", lost, partial)
	}
}

// newChecker is a process of our own in env, on the same Redis, Temporal and event log,
// that reads events and runs over the REST backend.
func newChecker(t *testing.T, tc client.Client, rdb redis.UniversalClient, env, dbURL string) *adapter.App {
	t.Helper()
	checker, err := adapter.New(context.Background(), adapter.Options{AppID: env + "-checker", Environment: env, Temporal: tc, Redis: rdb, Dev: true,
		DatabaseURL: dbURL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(checker.Close)
	return checker
}

// missingRuns waits for every run of the acknowledged events to end and counts the events
// that have none, and those with fewer than one per function.
func missingRuns(t *testing.T, checker *adapter.App, tc client.Client, acks []ack) (lost, partial int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, a := range acks {
		// An event a killed process accepted but did not dispatch waits for its lease to
		// expire; then another process dispatches it from the log.
		for {
			ev, err := checker.Event(ctx, a.internal)
			if err != nil {
				t.Fatalf("event %s (%s) acknowledged but not in the log: %v", a.clientID, a.internal, err)
			}
			if ev.DispatchedAt != nil {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("event %s (%s) is still not dispatched", a.clientID, a.internal)
			case <-time.After(100 * time.Millisecond):
			}
		}
		runs, err := checker.EventRuns(ctx, a.internal)
		if err != nil {
			t.Fatalf("event %s (%s): %v", a.clientID, a.internal, err)
		}
		switch {
		case len(runs) == 0:
			lost++
		case len(runs) < len(functions):
			partial++
		}
		for _, r := range runs {
			if err := tc.GetWorkflow(ctx, r.RunID, "").Get(ctx, nil); err != nil {
				t.Fatalf("run %s of event %s: %v", r.RunID, a.clientID, err)
			}
		}
	}
	return lost, partial
}
