package main

import (
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
	"testing"
	"time"

	"github.com/tempestrun/tempest/internal/testenv"
)

// startDev runs `tempest dev` in process on free ports with the real Redis, and stops it
// (checking it stops cleanly) when the test ends.
func startDev(t *testing.T) devStack { return startDevWith(t, nil) }

// startDevWith is startDev with flags changed by mod.
func startDevWith(t *testing.T, mod func(*devConfig)) devStack {
	t.Helper()
	t.Setenv("REDIS_URL", testenv.RedisURL())
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan devStack, 1)
	done := make(chan error, 1)
	var out bytes.Buffer
	cfg := devConfig{
		IP: "127.0.0.1", Port: 0, TemporalPort: -1, UIPort: freePort(t), InMemory: true,
		Retention: 24 * time.Hour, MaxEventSize: 512 << 10, LogLevel: "error",
	}
	if mod != nil {
		mod(&cfg)
	}
	go func() { done <- runDev(ctx, cfg, &out, func(s devStack) { ready <- s }) }()
	select {
	case s := <-ready:
		t.Cleanup(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("dev did not stop cleanly: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("dev did not stop within 30s of cancellation")
			}
		})
		return s
	case err := <-done:
		cancel()
		t.Fatalf("dev exited: %v\n%s", err, out.String())
	}
	return devStack{}
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := testPort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pollRuns follows GET /v1/events/{id}/runs until every run of the event has ended.
func pollRuns(t *testing.T, base, eventID string, want int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for ; time.Now().Before(deadline); <-tick.C {
		var body struct {
			Data []map[string]any `json:"data"`
		}
		getJSON(t, base+"/v1/events/"+eventID+"/runs", &body)
		ended := 0
		for _, r := range body.Data {
			if r["status"] != "Running" {
				ended++
			}
		}
		if len(body.Data) == want && ended == want {
			return body.Data
		}
	}
	t.Fatalf("runs of event %s did not end within 60s", eventID)
	return nil
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: HTTP %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, b)
	}
}

// The official inngest npm package sends to `tempest dev`; the run is followed over REST.
func TestDevWithInngestJSClient(t *testing.T) {
	dir, _ := filepath.Abs("../../e2e/js")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "inngest")); err != nil {
		t.Fatalf("the inngest npm package is not installed: run `npm install` in e2e/js (make test does): %v", err)
	}
	dev := startDev(t)

	cmd := exec.Command("node", "send.mjs", dev.APIURL, "demo/hello.world", `{"name":"Ada"}`)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node send.mjs: %v\n%s", err, out)
	}
	var sent struct{ IDs []string }
	if err := json.Unmarshal(out, &sent); err != nil || len(sent.IDs) != 1 {
		t.Fatalf("SDK send returned %s", out)
	}
	runs := pollRuns(t, dev.APIURL, sent.IDs[0], 1)
	r := runs[0]
	if r["status"] != "Completed" || r["function_id"] != "tempest-dev-hello-world" || r["event_id"] != sent.IDs[0] {
		t.Fatalf("run %v", r)
	}
	if got, _ := json.Marshal(r["output"]); string(got) != `{"message":"Hello Ada!"}` {
		t.Fatalf("output %s", got)
	}
	var single struct{ Data map[string]any }
	getJSON(t, dev.APIURL+"/v1/runs/"+r["run_id"].(string), &single)
	if single.Data["status"] != "Completed" || single.Data["ended_at"] == nil {
		t.Fatalf("GET /v1/runs: %v", single.Data)
	}
	var ev struct{ Data map[string]any }
	getJSON(t, dev.APIURL+"/v1/events/"+sent.IDs[0], &ev)
	if ev.Data["name"] != "demo/hello.world" || ev.Data["internal_id"] != sent.IDs[0] {
		t.Fatalf("GET /v1/events: %v", ev.Data)
	}

	// The charge example: retried twice (RetryAfter 1s), then charged; amount 0 is rejected
	// by a non-retriable error that the handler turns into a result.
	resp, err := http.Post(dev.APIURL+"/e/anykey", "application/json", strings.NewReader(
		`[{"name":"demo/charge.requested","data":{"amount":42,"fail_times":2}},{"name":"demo/charge.requested","data":{"amount":0}}]`))
	if err != nil {
		t.Fatal(err)
	}
	var ids struct{ IDs []string }
	json.NewDecoder(resp.Body).Decode(&ids)
	resp.Body.Close()
	if len(ids.IDs) != 2 {
		t.Fatalf("ids %v", ids)
	}
	for i, want := range []string{`{"receipt":"charged 42 after 3 attempt(s)","status":"charged"}`, `{"reason":"amount must be positive","status":"rejected"}`} {
		r := pollRuns(t, dev.APIURL, ids.IDs[i], 1)[0]
		if got, _ := json.Marshal(r["output"]); r["status"] != "Completed" || string(got) != want {
			t.Errorf("charge %d: %s %s, want %s", i, r["status"], got, want)
		}
	}

	// The Web UI is up.
	ui, err := http.Get(dev.UIURL)
	if err != nil {
		t.Fatal(err)
	}
	ui.Body.Close()
	if ui.StatusCode != 200 {
		t.Fatalf("Web UI: HTTP %d", ui.StatusCode)
	}
}

// Without REDIS_URL, dev falls back to the embedded Redis.
func TestDevRedisFallback(t *testing.T) {
	t.Setenv("REDIS_URL", "")
	c, desc, closeFn, err := devRedis()
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if !strings.HasPrefix(desc, "embedded") {
		t.Fatalf("desc %q", desc)
	}
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Get(ctx, "k").Result(); v != "v" {
		t.Fatalf("got %q", v)
	}
}

func testPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// `tempest dev -u URL` syncs the Inngest SDK app at URL before it reports ready.
func TestDevSyncsSDKApp(t *testing.T) {
	dir, _ := filepath.Abs("../../e2e/js")
	devPort, appPort := freePort(t), freePort(t)
	app := exec.Command("node", "app.mjs")
	app.Dir = dir
	app.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", appPort), fmt.Sprintf("INNGEST_DEV=http://127.0.0.1:%d", devPort))
	var appOut bytes.Buffer
	app.Stdout, app.Stderr = &appOut, &appOut
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Process.Kill(); _ = app.Wait() })
	appURL := fmt.Sprintf("http://127.0.0.1:%d/api/inngest", appPort)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(appURL); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app did not start:\n%s", appOut.String())
		}
	}
	dev := startDevWith(t, func(c *devConfig) { c.Port, c.SDKURLs, c.PollInterval = devPort, repeated{appURL}, time.Second })
	if !dev.App.Routes("shop-hello") {
		t.Fatal("dev reported ready before the -u app was synced")
	}
	resp, err := http.Post(dev.APIURL+"/e/dev", "application/json", strings.NewReader(`{"name":"shop/hello","data":{"name":"Ada"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var ids struct{ IDs []string }
	json.NewDecoder(resp.Body).Decode(&ids)
	resp.Body.Close()
	r := pollRuns(t, dev.APIURL, ids.IDs[0], 1)[0]
	if got, _ := json.Marshal(r["output"]); r["status"] != "Completed" || string(got) != `{"message":"Hello Ada"}` {
		t.Fatalf("the SDK app's run: %s %s", r["status"], got)
	}
	// The CLI lists it and syncs it again (nothing changed).
	var out bytes.Buffer
	if err := appsCmd(context.Background(), []string{"list", "--url", dev.APIURL}, &out); err != nil ||
		!strings.Contains(out.String(), "js:v4.24.0 at "+appURL) || !strings.Contains(out.String(), "Go workers on tempest-tempest-dev") {
		t.Fatalf("tempest apps list: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := appsCmd(context.Background(), []string{"resync", "shop", "--url", dev.APIURL}, &out); err != nil ||
		!strings.HasPrefix(out.String(), "app shop: ") || !strings.Contains(out.String(), "unchanged") {
		t.Fatalf("tempest apps resync shop: %v\n%s", err, out.String())
	}
}
