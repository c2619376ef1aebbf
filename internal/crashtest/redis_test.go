package crashtest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/client"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/internal/testenv"
)

// redisServer is a redis-server of the test's own, with AOF fsynced on every write (the
// production setting for no loss), that the test can SIGKILL and restart on its data.
type redisServer struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &redisServer{t: t, port: port, dir: t.TempDir()}
	r.start()
	t.Cleanup(func() { r.kill() })
	return r
}

func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.addr()})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); c.Ping(context.Background()).Err() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			r.t.Fatal("redis-server did not start within 10s")
		}
	}
}

func (r *redisServer) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
	}
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// Redis dies (SIGKILL) and comes back twice under load: requests fail while it is away and
// are retried, and every acknowledged event has its runs in both functions, once.
func TestKilledRedisLosesNoAcknowledgedEvent(t *testing.T) {
	tc, _ := testenv.Services(t)
	rs := startRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() }) // after the app that uses it
	appID := fmt.Sprintf("redis-crash-%d", time.Now().UnixNano()%1e9)
	dbURL := sqliteLog(t)
	addr := serveInProcess(t, appID, tc, rdb, dbURL)

	const events, kills = 400, 2
	load := sendLoad(addr, appID, events, 5*time.Second)
	for k := range kills {
		load.waitAcked(int64((k + 1) * events / (kills + 2)))
		rs.kill()
		time.Sleep(200 * time.Millisecond) // requests meet a dead Redis for a moment
		rs.start()
	}
	acks, retries := load.wait()
	checkRuns(t, tc, rdb, appID, dbURL, acks, fmt.Sprintf("through %d kills of Redis (%d retried requests)", kills, retries))
}

// serveInProcess runs, in the test process, an app with both functions (its worker and
// its event API) on tc and rdb until the test ends; it returns the API's address.
func serveInProcess(t *testing.T, appID string, tc client.Client, rdb redis.UniversalClient, dbURL string) string {
	t.Helper()
	app, err := adapter.New(context.Background(), adapter.Options{AppID: appID, Environment: appID, Temporal: tc, Redis: rdb, Dev: true,
		DatabaseURL: dbURL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	if err := define(app); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	go app.ServeListener(ctx, ln)
	return ln.Addr().String()
}
