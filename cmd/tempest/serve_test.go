package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

// serveEnv points `tempest serve` at the test's Temporal and Redis.
func serveEnv(t *testing.T, eventKey string) {
	testenv.Services(t)
	t.Setenv("TEMPORAL_ADDRESS", testenv.Server().Address())
	t.Setenv("REDIS_URL", testenv.RedisURL())
	t.Setenv("INNGEST_EVENT_KEY", eventKey)
	t.Setenv("INNGEST_SIGNING_KEY", "")
	t.Setenv("TEMPEST_INSECURE_NO_AUTH", "")
	t.Setenv("INNGEST_DEV", "")
	t.Setenv("DATABASE_URL", "sqlite:"+filepath.Join(t.TempDir(), "events.db"))
}

// serve refuses to start without an event key, or without a signing key unless told to
// leave /v1 open, and says so before printing its banner.
func TestServeRefusesBeforeItsBanner(t *testing.T) {
	for _, c := range []struct{ key, msg string }{
		{"", "no event keys: set INNGEST_EVENT_KEY"},
		{"k", "no signing key: set INNGEST_SIGNING_KEY"},
	} {
		serveEnv(t, c.key)
		var out bytes.Buffer
		err := serveCmd(context.Background(), []string{"--addr", "127.0.0.1:0"}, &out)
		if err == nil || !strings.Contains(err.Error(), c.msg) || strings.Contains(out.String(), "Tempest serve:") {
			t.Fatalf("key %q: err %v, output %q", c.key, err, out.String())
		}
	}
}

// --insecure-no-auth starts without a signing key and warns, after the banner.
func TestServeInsecureNoAuthWarns(t *testing.T) {
	serveEnv(t, "k")
	out := newWatch("Started Worker") // the SDK's log line: serve is up
	stop := startCommand(t, "serve", out, func(ctx context.Context) error {
		return serveCmd(ctx, []string{"--addr", "127.0.0.1:0", "--insecure-no-auth", "--examples"}, out)
	})
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if s := out.String(); !strings.Contains(s, "INSECURE") || strings.Index(s, "Tempest serve:") > strings.Index(s, "INSECURE") {
		t.Fatalf("no warning after the banner:\n%s", s)
	}
}

// startCommand runs a command until the returned stop (which gives its error), once its
// output shows out's marker.
func startCommand(t *testing.T, name string, out *watch, run func(context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	select {
	case <-out.seen:
	case err := <-done:
		cancel()
		t.Fatalf("%s exited: %v\n%s", name, err, out.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("%s did not start within 30s:\n%s", name, out.String())
	}
	return func() error { cancel(); return <-done }
}

// watch is an output that closes seen once it contains marker.
type watch struct {
	mu     sync.Mutex
	b      bytes.Buffer
	marker string
	seen   chan struct{}
}

func newWatch(marker string) *watch { return &watch{marker: marker, seen: make(chan struct{})} }

func (w *watch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.b.String(), w.marker)
	w.b.Write(p)
	if !had && strings.Contains(w.b.String(), w.marker) {
		close(w.seen)
	}
	return len(p), nil
}

func (w *watch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Without --examples, serve is a gateway: no functions of its own, events routed to the
// apps of its environment, whose workers run elsewhere.
func TestServeIsAGateway(t *testing.T) {
	serveEnv(t, "k")
	t.Setenv("INNGEST_SIGNING_KEY", "sk")
	env := fmt.Sprintf("gateway-test-%d", time.Now().UnixNano())
	t.Setenv("TEMPEST_ENVIRONMENT", env)
	// The app shares the gateway's event log, to read what the gateway dispatched.
	app := testenv.App(t, func(o *adapter.Options) { o.Environment, o.DatabaseURL = env, os.Getenv("DATABASE_URL") })
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "hello"}, adapter.EventTrigger("gw/hello", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "greet", func(context.Context) (string, error) { return "hi", nil })
		}); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	out := newWatch("Tempest serve: gateway on ")
	stop := startCommand(t, "serve", out, func(ctx context.Context) error {
		return serveCmd(ctx, []string{"--addr", "127.0.0.1:0"}, out)
	})
	defer stop()
	addr := strings.Fields(strings.SplitAfter(out.String(), "gateway on ")[1])[0]
	resp, err := http.Post("http://"+addr+"/e/k", "application/json", strings.NewReader(`{"name":"gw/hello","data":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	var sent struct{ IDs []string }
	json.NewDecoder(resp.Body).Decode(&sent)
	resp.Body.Close()
	if len(sent.IDs) != 1 {
		t.Fatalf("send: %d %+v", resp.StatusCode, sent)
	}
	if err := app.WaitDispatched(context.Background(), sent.IDs[0]); err != nil {
		t.Fatal(err)
	}
	runs, err := app.EventRuns(context.Background(), sent.IDs[0])
	if err != nil || len(runs) != 1 || runs[0].FunctionID != app.AppID()+"-hello" {
		t.Fatalf("the gateway started %+v %v, want the app's function", runs, err)
	}
	var got string
	if err := app.Temporal().GetWorkflow(context.Background(), runs[0].RunID, "").Get(context.Background(), &got); err != nil || got != "hi" {
		t.Fatalf("run: %q %v", got, err)
	}
	// A gateway runs only the worker of SDK apps' functions (every server does).
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "Started Worker") && !strings.Contains(line, "TaskQueue=tempest-sdk-") {
			t.Fatalf("the gateway started a worker of its own:\n%s", out.String())
		}
	}
}

// `tempest worker` runs the examples as an app of its own: a gateway of its environment
// routes to it.
func TestWorkerCommandIsAnApp(t *testing.T) {
	serveEnv(t, "k")
	env := fmt.Sprintf("worker-test-%d", time.Now().UnixNano())
	t.Setenv("TEMPEST_ENVIRONMENT", env)
	out := newWatch("Started Worker")
	stop := startCommand(t, "worker", out, func(ctx context.Context) error { return workerCmd(ctx, nil, out) })
	defer stop()
	gateway := testenv.App(t, func(o *adapter.Options) { o.Environment = env })
	var runs []api.FunctionRun
	for deadline := time.Now().Add(5 * time.Second); len(runs) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the gateway never routed demo/hello.world to the worker's app")
		}
		ids, err := gateway.Send(context.Background(), map[string]any{"name": "demo/hello.world", "data": map[string]any{"name": "Ada"}})
		if err != nil {
			t.Fatal(err)
		}
		if runs, err = gateway.EventRuns(context.Background(), ids[0]); err != nil {
			t.Fatal(err)
		}
	}
	var got map[string]string
	if err := gateway.Temporal().GetWorkflow(context.Background(), runs[0].RunID, "").Get(context.Background(), &got); err != nil || got["message"] != "Hello Ada!" {
		t.Fatalf("run: %v %v", got, err)
	}
}
