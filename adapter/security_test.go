package adapter_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/internal/testenv"
)

// Outside dev, serving without a signing key is refused unless the opt-out is named;
// with it, the server warns that /v1 is open.
func TestServeRequiresSigningKeyOutsideDev(t *testing.T) {
	t.Parallel()
	noKey := func(o *adapter.Options) { o.Dev = false; o.EventKeys = []string{"k"} }
	app := testenv.App(t, noKey)
	mustCreate(t, app, "noop", adapter.EventTrigger("test/noop", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Cancelled already: a server that does not refuse returns nil at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = app.ServeListener(ctx, ln)
	if err == nil || !strings.Contains(err.Error(), "INNGEST_SIGNING_KEY") || !strings.Contains(err.Error(), "--insecure-no-auth") {
		t.Fatalf("ServeListener without a signing key: %v", err)
	}
	if err := app.CheckServe(); err == nil {
		t.Fatal("CheckServe accepted a missing signing key")
	}

	// The embedded handler fails closed as well.
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	if code, _ := get(t, srv.URL+"/v1/runs/01HE8AM9DPK9N37V1RKY1DNQF5", nil); code != 503 {
		t.Fatalf("/v1 without a configured signing key: HTTP %d, want 503", code)
	}

	var logs syncBuffer
	addr := serve(t, func(o *adapter.Options) {
		noKey(o)
		o.InsecureNoAuth = true
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	if code, _ := get(t, "http://"+addr+"/v1/runs/01HE8AM9DPK9N37V1RKY1DNQF5", nil); code != 404 {
		t.Fatalf("/v1 with InsecureNoAuth: HTTP %d, want 404", code)
	}
	if !strings.Contains(logs.String(), "INSECURE") {
		t.Fatalf("no warning logged: %s", logs.String())
	}
}

// The event API allows any origin (browsers send events); the REST API sends no CORS
// headers, so a web page cannot read runs with a user's credentials.
func TestCORSOnlyOnTheEventAPI(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	origin := http.Header{"Origin": {"https://example.com"}, "Access-Control-Request-Method": {"POST"}}
	pre := func(path string) *http.Response {
		req, _ := http.NewRequest("OPTIONS", srv.URL+path, nil)
		req.Header = origin.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := pre("/e/k"); r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight /e: HTTP %d ACAO %q", r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"))
	}
	if r := pre("/v1/cancellations"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight /v1 allowed origin %q", r.Header.Get("Access-Control-Allow-Origin"))
	}
	if _, h := get(t, srv.URL+"/v1/runs/01HE8AM9DPK9N37V1RKY1DNQF5", origin); h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("GET /v1 allowed origin %q", h.Get("Access-Control-Allow-Origin"))
	}
}

// In dev, only requests addressed to a loopback name or address are answered, so a web
// page on another origin cannot reach the dev server by DNS rebinding.
func TestDevChecksTheHostHeader(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	for host, want := range map[string]int{
		"localhost:8288": 200, "LOCALHOST": 200, "127.0.0.1:8288": 200, "127.1.2.3": 200, "[::1]:8288": 200,
		"evil.example:8288": 403, "localhost.evil.example": 403, "10.0.0.1:8288": 403,
	} {
		req, _ := http.NewRequest("GET", srv.URL+"/health", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 403 && !strings.Contains(string(b), `"status":403`)) {
			t.Errorf("Host %q: HTTP %d %s, want %d", host, resp.StatusCode, b, want)
		}
	}
}

// When Redis is down, events are still accepted (they are in the event log), and the 500s
// of what needs Redis say so in general terms: no addresses, no Go errors.
func TestServerErrorsExposeNoInternals(t *testing.T) {
	t.Parallel()
	proxy := newRedisProxy(t)
	app := testenv.App(t, func(o *adapter.Options) { o.Redis = proxy.client })
	mustCreate(t, app, "all", adapter.EventTrigger("test/*", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil })
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	proxy.stop()

	resp, err := http.Post(srv.URL+"/e/k", "application/json", strings.NewReader(`{"name":"test/a"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("POST /e with Redis down: HTTP %d %s, want 200 (the log holds the event)", resp.StatusCode, b)
	}
	// A run that Temporal does not know may be a skipped run, whose record is in Redis.
	resp, err = http.Get(srv.URL + "/v1/runs/01HE8AM9DPK9N37V1RKY1DNQF5")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if body := string(b); resp.StatusCode != 500 || strings.Contains(body, "127.0.0.1") || strings.Contains(body, "dial") || strings.Contains(body, "redis") {
		t.Errorf("GET /v1/runs: HTTP %d %s", resp.StatusCode, body)
	}
}

func get(t *testing.T, url string, h http.Header) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if h != nil {
		req.Header = h.Clone()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
