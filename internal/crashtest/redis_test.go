package crashtest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/client"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/internal/testenv"
)

// Redis dies (SIGKILL) and comes back twice under load: requests fail while it is away and
// are retried, and every acknowledged event has its runs in both functions, once.
func TestKilledRedisLosesNoAcknowledgedEvent(t *testing.T) {
	tc, _ := testenv.Services(t)
	rs := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() }) // after the app that uses it
	appID := fmt.Sprintf("redis-crash-%d", time.Now().UnixNano()%1e9)
	dbURL := sqliteLog(t)
	addr := serveInProcess(t, appID, tc, rdb, dbURL)

	const events, kills = 400, 2
	load := sendLoad(addr, appID, events, 5*time.Second)
	for k := range kills {
		load.waitAcked(int64((k + 1) * events / (kills + 2)))
		rs.Kill()
		time.Sleep(200 * time.Millisecond) // requests meet a dead Redis for a moment
		rs.Start()
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
