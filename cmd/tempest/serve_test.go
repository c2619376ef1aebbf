package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveCmd(ctx, []string{"--addr", "127.0.0.1:0", "--insecure-no-auth"}, out) }()
	select {
	case <-out.seen:
	case err := <-done:
		t.Fatalf("serve exited: %v\n%s", err, out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start within 30s:\n%s", out.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if s := out.String(); !strings.Contains(s, "INSECURE") || strings.Index(s, "Tempest serve:") > strings.Index(s, "INSECURE") {
		t.Fatalf("no warning after the banner:\n%s", s)
	}
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
