// Package testenv gives tests the real services: one embedded Temporal server per test
// binary (in memory, on a free port) and the redis-server at $REDIS_URL
// (default redis://127.0.0.1:6379/0).
package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/internal/devserver"
	"github.com/tempestrun/tempest/internal/registry"
)

var (
	once   sync.Once
	server *devserver.Server
	tc     client.Client
	rdb    *redis.Client
	err    error
)

// RedisURL is the Redis tests use.
func RedisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

func start() {
	// A port picked free can be taken before the server binds it (another test binary
	// starting its own server): try again with other ports.
	for range 3 {
		server, err = devserver.Start(context.Background(), devserver.Options{
			InMemory: true, Port: -1, SearchAttributes: adapter.SearchAttributes(),
			QueuePollRPS: 1000, // as tempest dev
		})
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return
	}
	tc, err = client.Dial(client.Options{HostPort: server.Address(), Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return
	}
	opts, perr := redis.ParseURL(RedisURL())
	if perr != nil {
		err = perr
		return
	}
	rdb = redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if perr := rdb.Ping(ctx).Err(); perr != nil {
		err = fmt.Errorf("redis-server at %s is not reachable (start one, or set REDIS_URL): %w", RedisURL(), perr)
	}
}

// Services returns the shared Temporal client and Redis client, starting them once.
func Services(t testing.TB) (client.Client, *redis.Client) {
	t.Helper()
	once.Do(start)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return tc, rdb
}

// Server is the embedded Temporal server (after Services).
func Server() *devserver.Server { return server }

// App makes an App with a unique id (derived from the test name) on the shared services.
func App(t testing.TB, mod func(*adapter.Options)) *adapter.App {
	t.Helper()
	c, r := Services(t)
	id := strings.NewReplacer("/", "-", "_", "-", "#", "-").Replace(strings.ToLower(t.Name()))
	if len(id) > 40 {
		id = id[:40]
	}
	id = fmt.Sprintf("%s-%d", id, time.Now().UnixNano()%1e6)
	// Each test app is an environment of its own, so tests running in parallel on one Redis
	// never route events to each other's functions; a test of several apps sets one.
	opts := adapter.Options{
		AppID: id, Environment: id, Temporal: c, Redis: r, Dev: true,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if mod != nil {
		mod(&opts)
	}
	if opts.DatabaseURL == "" { // each test app logs its events in a file of its own
		opts.DatabaseURL = "sqlite:" + filepath.Join(t.TempDir(), "events.db")
	}
	app, err := adapter.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("adapter.New: %v", err)
	}
	t.Cleanup(app.Close)
	t.Cleanup(func() { DropEnvironment(opts.Environment) })
	return app
}

// StartWorker runs app's worker until the test ends; the returned func stops it earlier.
func StartWorker(t testing.TB, app *adapter.App) (stop func()) {
	t.Helper()
	w, err := app.StartWorker(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var o sync.Once
	stop = func() { o.Do(w.Stop) }
	t.Cleanup(stop)
	return stop
}

// DropEnvironment deletes a test environment's registry from Redis when the test ends (the
// registry's keys do not expire: they belong to the apps).
func DropEnvironment(env string) {
	if rdb != nil && env != "" && env != adapter.DefaultNamespace {
		_ = registry.Drop(context.Background(), rdb, env)
	}
}

// History is a workflow's whole history, for replay tests.
func History(t testing.TB, c client.Client, workflowID string) *historypb.History {
	t.Helper()
	hist := &historypb.History{}
	it := c.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		hist.Events = append(hist.Events, ev)
	}
	return hist
}
