// Package e2e runs unmodified Inngest SDK apps (the official npm inngest package behind
// express, e2e/js/app.mjs) on Tempest, with the real Temporal, Redis and node.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/flowcontrol"
	"github.com/tempestrun/tempest/internal/devserver"
	"github.com/tempestrun/tempest/internal/testenv"
)

// goStepsBegun counts the steps of bench-go that began.
var goStepsBegun atomic.Int64

// tempest is one Tempest server (event API, REST, Go worker, SDK worker) for a test.
type tempest struct {
	app  *adapter.App
	base string
	key  string // signing key ("" in dev)
}

func startTempest(t testing.TB, mod func(*adapter.Options)) *tempest {
	t.Helper()
	app := testenv.App(t, mod)
	// A Go function an SDK function invokes (SDK → Go).
	_, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "greet"}, adapter.EventTrigger("go/greet", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return map[string]any{"hi": in.Event.Data["name"]}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	// The same one-step function in Go, the baseline of BenchmarkSDKApp.
	_, err = adapter.CreateFunction(app, adapter.FunctionOpts{ID: "bench-go"}, adapter.EventTrigger("bench/go", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "start", func(ctx context.Context) (any, error) {
				goStepsBegun.Add(1)
				return nil, nil
			})
		})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.ServeListener(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return &tempest{app: app, base: "http://" + ln.Addr().String(), key: app.Options().SigningKey}
}

// jsApp is e2e/js/app.mjs running in node.
type jsApp struct {
	base string // http://127.0.0.1:<port>
	cmd  *exec.Cmd
}

func (j *jsApp) serveURL() string { return j.base + "/api/inngest" }

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startJS starts the express app with env (INNGEST_* and CHECKPOINTING) on port (0: a
// free one) and waits until it answers.
func startJS(t testing.TB, port int, env ...string) *jsApp {
	t.Helper()
	dir, _ := filepath.Abs("js")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "inngest")); err != nil {
		t.Fatalf("the inngest npm package is not installed: run `npm ci` in e2e/js (make test does): %v", err)
	}
	if port == 0 {
		port = freePort(t)
	}
	cmd := exec.Command("node", "app.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{fmt.Sprintf("PORT=%d", port)}, env...)...)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var logs bytes.Buffer
	go func() {
		sc := bufio.NewScanner(out)
		once := false
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "listening on") {
				once = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("node app.mjs did not start:\n%s", logs.String())
	}
	j := &jsApp{base: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("app.mjs output:\n%s", logs.String())
		}
	})
	return j
}

// waitCount waits until the app's counter key reaches n (else fails with what).
func (j *jsApp) waitCount(t testing.TB, key string, n int, what string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); j.state(t).Counts[key] < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (%s = %d after 30s, want %d)", what, key, j.state(t).Counts[key], n)
		}
	}
}

func (j *jsApp) kill() { _ = j.cmd.Process.Kill(); _ = j.cmd.Wait() }

type jsState struct {
	Counts map[string]int   `json:"counts"`
	Log    []map[string]any `json:"log"`
}

func (j *jsApp) state(t testing.TB) jsState {
	t.Helper()
	var s jsState
	doJSON(t, "GET", j.base+"/_state", "", nil, &s)
	return s
}

func doJSON(t testing.TB, method, url, key string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: HTTP %d: %v in %s", method, url, resp.StatusCode, err, b)
		}
	}
	return resp.StatusCode
}

// sync asks Tempest to sync the app (POST /v2/apps) and checks it worked.
func (s *tempest) sync(t testing.TB, j *jsApp) map[string]any {
	t.Helper()
	var res struct {
		Data  map[string]any `json:"data"`
		Error string         `json:"error"`
	}
	if code := doJSON(t, "POST", s.base+"/v2/apps", s.key, map[string]string{"url": j.serveURL()}, &res); code != 200 {
		t.Fatalf("sync: HTTP %d: %s", code, res.Error)
	}
	return res.Data
}

// send sends one event and returns its id.
func (s *tempest) send(t testing.TB, name string, data any) string {
	t.Helper()
	var res struct {
		IDs    []string `json:"ids"`
		Status int      `json:"status"`
		Error  string   `json:"error"`
	}
	key := "test"
	if code := doJSON(t, "POST", s.base+"/e/"+key, "", map[string]any{"name": name, "data": data}, &res); code != 200 {
		t.Fatalf("send %s: HTTP %d %s", name, code, res.Error)
	}
	return res.IDs[0]
}

// trace is a run's steps as "kind id STATUS, ...".
func (s *tempest) trace(t testing.TB, runID string) string {
	t.Helper()
	var body struct {
		Data struct {
			Steps []struct {
				ID     string `json:"step_id"`
				Kind   string `json:"kind"`
				Status string `json:"status"`
			} `json:"steps"`
		} `json:"data"`
	}
	doJSON(t, "GET", s.base+"/v2/runs/"+runID+"/trace", s.key, nil, &body)
	var parts []string
	for _, st := range body.Data.Steps {
		parts = append(parts, st.Kind+" "+st.ID+" "+st.Status)
	}
	return strings.Join(parts, ", ")
}

type run struct {
	RunID      string          `json:"run_id"`
	FunctionID string          `json:"function_id"`
	Status     string          `json:"status"`
	Output     json.RawMessage `json:"output"`
}

// runs waits until the event has want runs and all have ended.
func (s *tempest) runs(t testing.TB, eventID string, want int) []run {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var got []run
	for time.Now().Before(deadline) {
		var body struct {
			Data []run `json:"data"`
		}
		doJSON(t, "GET", s.base+"/v1/events/"+eventID+"/runs", s.key, nil, &body)
		got = body.Data
		ended := 0
		for _, r := range got {
			if r.Status != "Running" && r.Status != "Scheduled" {
				ended++
			}
		}
		if len(got) == want && ended == want {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("event %s: runs did not end within 90s: %+v", eventID, got)
	return nil
}

// one runs one event to its single run's end.
func (s *tempest) one(t testing.TB, name string, data any) run {
	t.Helper()
	return s.runs(t, s.send(t, name, data), 1)[0]
}

func wantRun(t testing.TB, r run, status, output string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("run %s of %s: status %s, want %s (output %s)", r.RunID, r.FunctionID, r.Status, status, r.Output)
	}
	if output != "" {
		var a, b any
		_ = json.Unmarshal(r.Output, &a)
		_ = json.Unmarshal([]byte(output), &b)
		ab, _ := json.Marshal(a)
		bb, _ := json.Marshal(b)
		if !bytes.Equal(ab, bb) {
			t.Fatalf("run %s of %s: output %s, want %s", r.RunID, r.FunctionID, r.Output, output)
		}
	}
}

func wantCounts(t testing.TB, s jsState, want map[string]int) {
	t.Helper()
	for k, n := range want {
		if s.Counts[k] != n {
			t.Errorf("step body %s ran %d times, want %d (counts %v)", k, s.Counts[k], n, s.Counts)
		}
	}
}

// TestJSAppNoCheckpointing runs steps with the SDK's checkpointing off: one call per step.
func TestJSAppNoCheckpointing(t *testing.T) {
	s := startTempest(t, nil)
	j := startJS(t, 0, "INNGEST_DEV="+s.base, "CHECKPOINTING=off")
	s.sync(t, j)
	wantRun(t, s.one(t, "shop/three", nil), "Completed", `{"out":"abc"}`)
	wantCounts(t, j.state(t), map[string]int{"three.a": 1, "three.b": 1, "three.c": 1, "calls:shop-three": 4})
	wantRun(t, s.one(t, "shop/parallel", nil), "Completed", `6`)
	wantCounts(t, j.state(t), map[string]int{"fanout.p1": 1, "fanout.p2": 1, "fanout.p3": 1})
}

// TestJSApp runs the test app in dev mode (INNGEST_DEV=<tempest>, unsigned) through the
// SDK's features.
func TestJSApp(t *testing.T) {
	s := startTempest(t, nil)
	jsAppSuite(t, s, startJS(t, 0, "INNGEST_DEV="+s.base))
}

// jsAppSuite runs the app's features through s, the server events are sent to (the app may
// talk to another server of the environment).
func jsAppSuite(t *testing.T, s *tempest, j *jsApp) {
	// Runs whose histories must replay on this version's workflow (the last subtest).
	var replay []string
	if res := s.sync(t, j); res["sync_kind"] != "out_of_band" || res["app_id"] != "shop" {
		t.Fatalf("sync: %v", res)
	}
	t.Run("hello", func(t *testing.T) {
		r := s.one(t, "shop/hello", map[string]any{"name": "Ada"})
		wantRun(t, r, "Completed", `{"message":"Hello Ada"}`)
		wantCounts(t, j.state(t), map[string]int{"hello.greet": 1})
		// A rerun runs the function again from the start; from a step is refused.
		var rerun struct {
			Data struct {
				RunID string `json:"run_id"`
			} `json:"data"`
			Error string `json:"error"`
		}
		if code := doJSON(t, "POST", s.base+"/v2/runs/"+r.RunID+"/rerun", "", nil, &rerun); code != 200 {
			t.Fatalf("rerun: HTTP %d %s", code, rerun.Error)
		}
		j.waitCount(t, "hello.greet", 2, "the rerun did not run the step")
		code := doJSON(t, "POST", s.base+"/v2/runs/"+r.RunID+"/rerun", "", map[string]any{"from_step": map[string]any{"step_id": "greet"}}, &rerun)
		if code != 400 || !strings.Contains(rerun.Error, "from the start only") {
			t.Fatalf("rerun from a step: HTTP %d %q, want 400", code, rerun.Error)
		}
	})
	t.Run("three steps, each body once, in one checkpointed call", func(t *testing.T) {
		r := s.one(t, "shop/three", nil)
		replay = append(replay, r.RunID)
		wantRun(t, r, "Completed", `{"out":"abc"}`)
		wantCounts(t, j.state(t), map[string]int{"three.a": 1, "three.b": 1, "three.c": 1, "calls:shop-three": 1})
		// The trace lists the app's steps by name, as a Go run's.
		if got := s.trace(t, r.RunID); got != "step.run a COMPLETED, step.run b COMPLETED, step.run c COMPLETED" {
			t.Fatalf("trace: %s", got)
		}
	})
	t.Run("retries with attempt numbers", func(t *testing.T) {
		r := s.one(t, "shop/flaky", nil)
		replay = append(replay, r.RunID)
		wantRun(t, r, "Completed", `"ok"`)
		var attempts []any
		for _, l := range j.state(t).Log {
			if l["fn"] == "flaky" {
				attempts = append(attempts, l["attempt"])
			}
		}
		if fmt.Sprint(attempts) != "[0 1 2]" {
			t.Fatalf("attempts seen by the app: %v, want [0 1 2]", attempts)
		}
	})
	t.Run("NonRetriableError fails at once", func(t *testing.T) {
		wantRun(t, s.one(t, "shop/fatal", nil), "Failed", "")
		wantCounts(t, j.state(t), map[string]int{"fatal.doomed": 1})
	})
	t.Run("a caught step error", func(t *testing.T) {
		wantRun(t, s.one(t, "shop/caught", nil), "Completed", `{"recovered":true,"message":"inner"}`)
	})
	t.Run("RetryAfterError", func(t *testing.T) {
		wantRun(t, s.one(t, "shop/retryafter", nil), "Completed", `"done"`)
	})
	t.Run("sleep", func(t *testing.T) {
		began := time.Now()
		r := s.one(t, "shop/sleep", nil)
		replay = append(replay, r.RunID)
		wantRun(t, r, "Completed", `"woke"`)
		if d := time.Since(began); d < time.Second {
			t.Fatalf("the run with a 1s sleep took %s", d)
		}
		if got := s.trace(t, r.RunID); !strings.Contains(got, "step.sleep nap COMPLETED") {
			t.Fatalf("trace: %s", got)
		}
	})
	t.Run("waitForEvent matched and timed out", func(t *testing.T) {
		ev := s.send(t, "shop/wait", map[string]any{"orderId": "o1"})
		// The wait is registered once the app has answered the first call.
		deadline := time.Now().Add(30 * time.Second)
		for {
			s.send(t, "shop/approved", map[string]any{"orderId": "o1", "by": "Bo"})
			var body struct {
				Data []run `json:"data"`
			}
			time.Sleep(300 * time.Millisecond)
			doJSON(t, "GET", s.base+"/v1/events/"+ev+"/runs", "", nil, &body)
			if len(body.Data) == 1 && body.Data[0].Status != "Running" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the wait did not resume")
			}
		}
		r := s.runs(t, ev, 1)[0]
		replay = append(replay, r.RunID)
		wantRun(t, r, "Completed", `{"approved":{"orderId":"o1","by":"Bo"}}`)
		wantRun(t, s.one(t, "shop/wait", map[string]any{"orderId": "o2", "timeout": "1s"}), "Completed", `{"approved":null}`)
	})
	t.Run("invoke SDK and Go functions", func(t *testing.T) {
		r := s.one(t, "shop/invoke", map[string]any{"n": 21, "goApp": s.app.AppID(), "goFn": "greet"})
		replay = append(replay, r.RunID)
		wantRun(t, r, "Completed", `{"child":{"doubled":42},"go":{"hi":"Ada"}}`)
	})
	t.Run("parallel steps", func(t *testing.T) {
		r := s.one(t, "shop/parallel", nil)
		replay = append(replay, r.RunID)
		wantRun(t, r, "Completed", `6`)
		wantCounts(t, j.state(t), map[string]int{"fanout.p1": 1, "fanout.p2": 1, "fanout.p3": 1})
	})
	t.Run("sendEvent", func(t *testing.T) {
		before := j.state(t).Counts["hello.greet"]
		wantRun(t, s.one(t, "shop/send", nil), "Completed", `"sent"`)
		j.waitCount(t, "hello.greet", before+1, "the event sent by step.sendEvent did not run shop-hello")
	})
	t.Run("onFailure", func(t *testing.T) {
		wantRun(t, s.one(t, "shop/fail", nil), "Failed", "")
		j.waitCount(t, "onFailure", 1, "onFailure did not run")
	})
	t.Run("cron", func(t *testing.T) {
		h := s.app.Schedule(context.Background(), "shop-ticker", "TZ=Europe/Paris 0 0 1 1 *")
		if err := h.Trigger(context.Background(), client.ScheduleTriggerOptions{}); err != nil {
			t.Fatalf("the sync made no schedule for the cron trigger: %v", err)
		}
		j.waitCount(t, "ticker.tick", 1, "the cron tick did not run the function")
		if l := j.state(t).Log; l[len(l)-1]["what"] != "inngest/scheduled.timer" {
			t.Fatalf("the tick's event: %v", l[len(l)-1])
		}
		// Removing the app removes its schedules.
		if code := doJSON(t, "DELETE", s.base+"/v2/apps/shop", "", nil, nil); code != 200 {
			t.Fatalf("DELETE /v2/apps/shop: HTTP %d", code)
		}
		if _, err := h.Describe(context.Background()); err == nil {
			t.Fatal("the app's schedule outlived the app")
		}
		s.sync(t, j) // the next subtests need it
	})
	t.Run("cancelOn", func(t *testing.T) {
		ev := s.send(t, "shop/cancellable", map[string]any{"id": "c1"})
		j.waitCount(t, "cancellable.first", 1, "the first step did not run")
		s.send(t, "shop/cancel", map[string]any{"id": "c1"})
		r := s.runs(t, ev, 1)[0]
		replay = append(replay, r.RunID)
		wantRun(t, r, "Cancelled", "")
		wantCounts(t, j.state(t), map[string]int{"cancellable.second": 0})
	})
	t.Run("histories replay", func(t *testing.T) {
		r := worker.NewWorkflowReplayer()
		adapter.RegisterSDKWorkflow(r)
		for _, id := range replay {
			if err := r.ReplayWorkflowHistory(nil, testenv.History(t, s.app.Temporal(), id)); err != nil {
				t.Errorf("the history of run %s does not replay: %v", id, err)
			}
		}
	})
}

// TestJSAppCrash kills the app (SIGKILL) while a call runs its second step, after the first
// was checkpointed, and starts it again: the call is retried, the run completes, and the
// checkpointed step does not run again.
func TestJSAppCrash(t *testing.T) {
	s := startTempest(t, nil)
	port := freePort(t)
	j := startJS(t, port, "INNGEST_DEV="+s.base, "CRASH_HANG=1")
	s.sync(t, j)
	ev := s.send(t, "shop/crash", nil)
	j.waitCount(t, "crashy.two", 1, "step two did not start")
	// The SDK sends step one's checkpoint before it starts step two but does not wait for
	// the answer: kill the app once the checkpoint is stored.
	var body struct {
		Data []run `json:"data"`
	}
	_, rdb := testenv.Services(t)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		doJSON(t, "GET", s.base+"/v1/events/"+ev+"/runs", "", nil, &body)
		if len(body.Data) == 1 {
			if ops, err := flowcontrol.Checkpoints(context.Background(), rdb, body.Data[0].RunID, false); err == nil && len(ops) > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("step one was not checkpointed")
		}
	}
	j.kill()
	j2 := startJS(t, port, "INNGEST_DEV="+s.base)
	wantRun(t, s.runs(t, ev, 1)[0], "Completed", `{"two":2}`)
	wantCounts(t, j2.state(t), map[string]int{"crashy.one": 0, "crashy.two": 1})
}

const testSigningKey = "signkey-test-8ee2262a15e8d3c5b3b2b5e1f2a1d4c7b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5"

func cloud(key string) func(*adapter.Options) {
	return func(o *adapter.Options) {
		o.Dev, o.SigningKey, o.EventKeys = false, key, []string{"test"}
	}
}

// TestJSAppSigned runs the app in cloud mode: Tempest signs its sync (the app answers in
// band, signed) and every call; the app's checkpoints carry its hashed key.
func TestJSAppSigned(t *testing.T) {
	s := startTempest(t, cloud(testSigningKey))
	j := startJS(t, 0, "INNGEST_BASE_URL="+s.base, "INNGEST_SIGNING_KEY="+testSigningKey, "INNGEST_EVENT_KEY=test", "INNGEST_DEV=0")
	if res := s.sync(t, j); res["sync_kind"] != "in_band" || res["app_id"] != "shop" {
		t.Fatalf("sync: %v", res)
	}
	wantRun(t, s.one(t, "shop/three", nil), "Completed", `{"out":"abc"}`)
	wantCounts(t, j.state(t), map[string]int{"three.a": 1, "three.b": 1, "three.c": 1, "calls:shop-three": 1})
	// Out of band too: the app's own PUT makes it register with its hashed key.
	req, _ := http.NewRequest("PUT", j.serveURL(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("out-of-band sync: HTTP %d %s", resp.StatusCode, b)
	}
	// Without the key, the REST API and the SDK endpoints refuse.
	for _, path := range []string{"/fn/register", "/v1/checkpoint/r/async"} {
		req, _ := http.NewRequest("POST", s.base+path, strings.NewReader(`{}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("POST %s without the key: HTTP %d, want 401", path, resp.StatusCode)
		}
	}
}

// TestJSAppWrongKey: an app with another signing key refuses Tempest's sync, and the sync
// says why.
func TestJSAppWrongKey(t *testing.T) {
	s := startTempest(t, cloud(testSigningKey))
	other := "signkey-test-0000000000000000000000000000000000000000000000000000000000000001"
	j := startJS(t, 0, "INNGEST_BASE_URL="+s.base, "INNGEST_SIGNING_KEY="+other, "INNGEST_EVENT_KEY=test", "INNGEST_DEV=0")
	var res struct {
		Error string `json:"error"`
	}
	code := doJSON(t, "POST", s.base+"/v2/apps", s.key, map[string]string{"url": j.serveURL()}, &res)
	if code != 400 || !strings.Contains(res.Error, "SIGNING_KEY") {
		t.Fatalf("sync with the wrong key: HTTP %d %q, want 400 naming the signing key", code, res.Error)
	}
}

// TestJSAppFlowControl checks the SDK functions' flow control options hold as Go ones do.
func TestJSAppFlowControl(t *testing.T) {
	s := startTempest(t, nil)
	j := startJS(t, 0, "INNGEST_DEV="+s.base)
	s.sync(t, j)
	t.Run("concurrency 1", func(t *testing.T) {
		var evs []string
		for range 3 {
			evs = append(evs, s.send(t, "shop/concurrency", nil))
		}
		for _, ev := range evs {
			wantRun(t, s.runs(t, ev, 1)[0], "Completed", "")
		}
		if m := j.state(t).Counts["limited.max"]; m != 1 {
			t.Fatalf("%d steps ran at once, the limit is 1", m)
		}
	})
	t.Run("throttle 1 per 2s", func(t *testing.T) {
		a, b := s.send(t, "shop/throttle", nil), s.send(t, "shop/throttle", nil)
		s.runs(t, a, 1)
		s.runs(t, b, 1)
		var at []float64
		for _, l := range j.state(t).Log {
			if l["fn"] == "throttled" {
				at = append(at, l["what"].(float64))
			}
		}
		if len(at) != 2 || at[1]-at[0] < 1500 {
			t.Fatalf("throttled steps ran at %v (ms), want 2 about 2 s apart", at)
		}
	})
	t.Run("debounce", func(t *testing.T) {
		for i := range 3 {
			s.send(t, "shop/debounce", map[string]any{"i": i})
		}
		j.waitCount(t, "debounced.d", 1, "the debounced run did not run")
		time.Sleep(2500 * time.Millisecond) // a second run would have started by now
		if n := j.state(t).Counts["debounced.d"]; n != 1 {
			t.Fatalf("3 events debounced into %d runs, want 1", n)
		}
	})
	t.Run("batchEvents", func(t *testing.T) {
		for i := range 3 {
			s.send(t, "shop/batch", map[string]any{"i": i})
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			var sizes []any
			for _, l := range j.state(t).Log {
				if l["fn"] == "batched" {
					sizes = append(sizes, l["what"])
				}
			}
			if len(sizes) > 0 {
				if fmt.Sprint(sizes) != "[3]" {
					t.Fatalf("batches of %v events, want one of 3", sizes)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the batch did not run")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// TestJSAppRedisOutage stops Redis (SIGKILL, its own server with AOF) for 3 s while a
// checkpointed call runs its second step, and starts it again: the run completes, and the
// step checkpointed before the outage does not run again.
func TestJSAppRedisOutage(t *testing.T) {
	rs := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { rdb.Close() })
	s := startTempest(t, func(o *adapter.Options) { o.Redis = rdb })
	j := startJS(t, 0, "INNGEST_DEV="+s.base)
	s.sync(t, j)
	ev := s.send(t, "shop/outage", nil)
	j.waitCount(t, "outage.two", 1, "step two did not start")
	// Down for 3 s: the SDK's checkpoint of step two fails through its retries, and so do
	// Tempest's reads at the end of the call.
	rs.Kill()
	time.Sleep(3 * time.Second)
	rs.Start()
	wantRun(t, s.runs(t, ev, 1)[0], "Completed", `"survived"`)
	wantCounts(t, j.state(t), map[string]int{"outage.one": 1, "outage.three": 1})
}

// TestJSAppSplit runs the whole suite of TestJSApp against the production shape: Temporal and
// the event log on PostgreSQL, two Tempest servers of one environment. The app talks to one
// (its registration, checkpoints, sends); syncs, events and REST go to the other; either
// server's SDK worker calls the app.
func TestJSAppSplit(t *testing.T) {
	pg := testenv.Postgres(t)
	db := fmt.Sprintf("tempest_sdk_%d", time.Now().UnixNano()%1e9)
	admin := *pg
	admin.Path = "/postgres"
	srv, err := devserver.Start(context.Background(), devserver.Options{
		DatabaseURL: pg.JoinPath(db).String(), HistoryShards: 2, Port: -1, SearchAttributes: adapter.SearchAttributes(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("psql", admin.String(), "-qc", "CREATE DATABASE "+db+"_events").CombinedOutput(); err != nil {
		t.Fatalf("create the event log's database: %v %s", err, out)
	}
	t.Cleanup(func() {
		srv.Stop()
		for _, name := range []string{db, db + "_visibility", db + "_events"} {
			_ = exec.Command("psql", admin.String(), "-qc", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)").Run()
		}
	})
	tc, err := client.Dial(client.Options{HostPort: srv.Address()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	env := fmt.Sprintf("split-%d", time.Now().UnixNano()%1e9)
	shape := func(o *adapter.Options) {
		o.Temporal, o.Environment, o.DatabaseURL = tc, env, pg.JoinPath(db+"_events").String()
	}
	a, b := startTempest(t, shape), startTempest(t, shape)
	jsAppSuite(t, b, startJS(t, 0, "INNGEST_DEV="+a.base))
}

// TestJSAppStreaming runs the app with streaming on (201, keep-alive spaces, then the answer
// wrapped in JSON).
func TestJSAppStreaming(t *testing.T) {
	s := startTempest(t, nil)
	j := startJS(t, 0, "INNGEST_DEV="+s.base, "INNGEST_STREAMING=true", "CHECKPOINTING=off")
	s.sync(t, j)
	wantRun(t, s.one(t, "shop/three", nil), "Completed", `{"out":"abc"}`)
	wantRun(t, s.one(t, "shop/retryafter", nil), "Completed", `"done"`)
	wantCounts(t, j.state(t), map[string]int{"three.a": 1, "three.b": 1, "three.c": 1})
}

// TestRegisterRefusals: syncs that can never succeed get a 400 whose body carries the
// status and the reason, as the SDK reports them.
func TestRegisterRefusals(t *testing.T) {
	s := startTempest(t, nil)
	// Another Go app of the environment, with its worker (it publishes itself).
	other := testenv.App(t, func(o *adapter.Options) { o.Environment = s.app.Options().Environment })
	if _, err := adapter.CreateFunction(other, adapter.FunctionOpts{ID: "f"}, adapter.EventTrigger("a/b", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, other)
	fn := func(extra string) string {
		return `{"id":"shop-f","triggers":[{"event":"a/b"}],"steps":{"step":{"runtime":{"type":"http","url":"http://127.0.0.1:1/api/inngest"}}}` + extra + `}`
	}
	body := func(app, sdk, fns string) string {
		return `{"url":"http://127.0.0.1:1/api/inngest","appName":"` + app + `","sdk":"` + sdk + `","functions":[` + fns + `]}`
	}
	post := func(b string, hdr ...string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", s.base+"/fn/register", strings.NewReader(b))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	for name, c := range map[string]struct {
		body string
		hdr  []string
		want string
	}{
		"server kind":    {body("shop", "js:v4.24.0", fn("")), []string{"X-Inngest-Expected-Server-Kind", "cloud"}, "expects an Inngest cloud server"},
		"no app id":      {body("", "js:v4.24.0", fn("")), nil, "appName is empty"},
		"blocked SDK":    {body("shop", "js:v3.30.0", fn("")), nil, "CVE-2026-42047"},
		"bad cron":       {body("shop", "js:v4.24.0", strings.Replace(fn(""), `{"event":"a/b"}`, `{"cron":"every day"}`, 1)), nil, "cron"},
		"bad CEL":        {body("shop", "js:v4.24.0", fn(`,"idempotency":"event.data.(("`)), nil, `function "f"`},
		"bad period":     {body("shop", "js:v4.24.0", fn(`,"throttle":{"limit":1,"period":"soon"}`)), nil, "throttle.period"},
		"other app's fn": {body("shop", "js:v4.24.0", strings.Replace(fn(""), "shop-f", "mail-f", 1)), nil, "does not start with the app id"},
		"a Go app's id":  {body(s.app.AppID(), "js:v4.24.0", strings.Replace(fn(""), "shop-f", s.app.AppID()+"-f", 1)), nil, "own"},
		"another Go app": {body(other.AppID(), "js:v4.24.0", strings.Replace(fn(""), "shop-f", other.AppID()+"-f", 1)), nil, "belongs to a Go app"},
		"listed twice":   {body("shop", "js:v4.24.0", fn("")+","+fn("")), nil, "listed twice"},
	} {
		code, out := post(c.body, c.hdr...)
		msg, _ := out["error"].(string)
		if code != 400 || out["status"] != float64(400) || !strings.Contains(msg, c.want) {
			t.Errorf("%s: HTTP %d %v, want 400 with status 400 and %q", name, code, out, c.want)
		}
	}
	if code, out := post(body("shop", "js:v4.24.0", fn(""))); code != 200 || out["modified"] != true {
		t.Fatalf("a valid sync: HTTP %d %v", code, out)
	}
	if code, out := post(body("shop", "js:v4.24.0", fn(""))); code != 200 || out["modified"] != false {
		t.Fatalf("the same sync again: HTTP %d %v, want modified false", code, out)
	}
	if code, _ := post(`{"url":"http://x/api","appName":"shop","pad":"` + strings.Repeat("x", 5<<20) + `"}`); code != 413 {
		t.Fatalf("a 5 MiB sync: HTTP %d, want 413", code)
	}
}

// TestCheckpointFencing: a checkpoint counts only for the call attempt in flight.
func TestCheckpointFencing(t *testing.T) {
	s := startTempest(t, nil)
	_, rdb := testenv.Services(t)
	run := fmt.Sprintf("run-%d", time.Now().UnixNano())
	cp := func(qi string, gen int, data string) int {
		b := fmt.Sprintf(`{"run_id":%q,"qi_id":%q,"generation_id":%d,"steps":[{"op":"StepRun","id":"abc","data":%s}]}`, run, qi, gen, data)
		req, _ := http.NewRequest("POST", s.base+"/v1/checkpoint/"+run+"/async", strings.NewReader(b))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := cp("1", 1, "1"); code != 409 {
		t.Fatalf("a checkpoint of no call in flight: HTTP %d, want 409", code)
	}
	if _, err := flowcontrol.BeginCall(context.Background(), rdb, run, "1", 2); err != nil {
		t.Fatal(err)
	}
	if code := cp("1", 1, "1"); code != 409 {
		t.Fatalf("a checkpoint of an earlier attempt: HTTP %d, want 409", code)
	}
	if code := cp("1", 2, "1"); code != 200 {
		t.Fatalf("a checkpoint of the attempt in flight: HTTP %d, want 200", code)
	}
	if code := cp("1", 2, `"`+strings.Repeat("x", 5<<20)+`"`); code != 413 {
		t.Fatalf("a 5 MiB step: HTTP %d, want 413", code)
	}
	prior, err := flowcontrol.BeginCall(context.Background(), rdb, run, "1", 3)
	if err != nil || len(prior) != 1 {
		t.Fatalf("the next attempt reads %d checkpoints (%v), want 1", len(prior), err)
	}
}

// TestJSAppLargeSteps: 5 MiB of step results in one checkpointed call (over Temporal's 2 MiB
// payload limit: the payload codec keeps them in Redis) complete; without checkpointing the
// last call would carry 5 MiB to an app that reads at most 4 MiB, so it says use_api and the
// app reads them from the API. A step over 4 MiB fails the run either way, and says why.
func TestJSAppLargeSteps(t *testing.T) {
	s := startTempest(t, nil)
	for _, mode := range []string{"on", "off"} {
		j := startJS(t, 0, "INNGEST_DEV="+s.base, "CHECKPOINTING="+mode, "JSON_LIMIT=4mb")
		s.sync(t, j)
		const size = 2621440
		wantRun(t, s.one(t, "shop/big", map[string]any{"mib": 2.5}), "Completed", fmt.Sprintf(`{"x":%d,"y":%d}`, size, size))
		r := s.one(t, "shop/big", map[string]any{"mib": 4.5})
		if r.Status != "Failed" || !strings.Contains(string(r.Output), "over the limit") {
			t.Fatalf("checkpointing %s: a 4.5 MiB step: %s %s", mode, r.Status, r.Output)
		}
		j.kill()
	}
}

// TestJSAppTemporalOutage cuts Tempest off Temporal (every connection) for 12 s, past the
// workflow task timeout, while a checkpointed call runs its second step: the call's outcome
// cannot reach Temporal, the task is given again and the call made again (two calls, as
// seen here), and it is sent every step the app checkpointed: none runs twice.
func TestJSAppTemporalOutage(t *testing.T) {
	testenv.Services(t) // the shared Temporal server
	o := testenv.NewOutage(t, testenv.Server().Address())
	s := startTempest(t, func(opts *adapter.Options) { opts.Temporal, opts.TemporalAddress = nil, o.Addr() })
	j := startJS(t, 0, "INNGEST_DEV="+s.base)
	s.sync(t, j)
	ev := s.send(t, "shop/outage", nil)
	j.waitCount(t, "outage.two", 1, "step two did not start")
	o.Set(true)
	time.Sleep(12 * time.Second)
	o.Set(false)
	wantRun(t, s.runs(t, ev, 1)[0], "Completed", `"survived"`)
	t.Logf("calls to the app: %d", j.state(t).Counts["calls:shop-outage"])
	wantCounts(t, j.state(t), map[string]int{"outage.one": 1, "outage.two": 1, "outage.three": 1})
}

// TestJSAppReplay replays an SDK function's runs in bulk (POST /v1/replays), as Go
// functions' are: each replayed run calls the app again, from its first step, and is
// listed as a rerun of the one it replays.
func TestJSAppReplay(t *testing.T) {
	s := startTempest(t, nil)
	j := startJS(t, 0, "INNGEST_DEV="+s.base)
	s.sync(t, j)
	from := time.Now().UTC().Add(-time.Second)
	originals := map[string]bool{}
	for i := range 3 {
		r := s.one(t, "shop/hello", map[string]any{"name": fmt.Sprint("n", i)})
		wantRun(t, r, "Completed", fmt.Sprintf(`{"message":"Hello n%d"}`, i))
		originals[r.RunID] = true
	}
	until := time.Now().UTC()
	var res struct {
		Data api.Replay `json:"data"`
	}
	body := map[string]any{"app_id": "shop", "function_id": "hello", "from": from, "until": until, "statuses": []string{"COMPLETED"}}
	if code := doJSON(t, "POST", s.base+"/v1/replays", s.key, body, &res); code != 200 || res.Data.ID == "" {
		t.Fatalf("POST /v1/replays: HTTP %d %+v", code, res)
	}
	deadline := time.Now().Add(time.Minute)
	for rp := res.Data; rp.Status == api.ReplayRunning || rp.Runs.Completed < 3; rp = res.Data {
		if time.Now().After(deadline) {
			t.Fatalf("replay did not complete its runs: %+v", rp)
		}
		time.Sleep(100 * time.Millisecond)
		doJSON(t, "GET", s.base+"/v1/replays/"+rp.ID, s.key, nil, &res)
	}
	if rp := res.Data; rp.Status != api.ReplayCompleted || *rp.Matched != 3 || rp.Started != 3 || rp.Runs.Failed != 0 {
		t.Fatalf("replay: %+v", rp)
	}
	wantCounts(t, j.state(t), map[string]int{"hello.greet": 6, "calls:shop-hello": 6})
	// The listing is by function id, and the other tests' apps (environments of their own on
	// the same namespace) have a shop-hello too: only this test's runs count.
	var runs struct {
		Data []api.RunV2 `json:"data"`
	}
	doJSON(t, "GET", s.base+"/v2/apps/shop/functions/hello/runs?status=COMPLETED&limit=100", s.key, nil, &runs)
	listed, reruns := 0, map[string]bool{}
	for _, r := range runs.Data {
		if originals[r.ID] {
			listed++
		}
		if originals[r.RerunOf] {
			reruns[r.RerunOf] = true
		}
	}
	if listed != 3 || len(reruns) != 3 {
		t.Fatalf("%d of the 3 runs listed, %d of them rerun: %+v", listed, len(reruns), runs.Data)
	}
}
