// Command tempest runs Tempest: `dev` (everything in one process), `serve` (API + worker
// against an external Temporal and Redis) and `bench`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/examples"
	"github.com/tempestrun/tempest/internal/devserver"
)

// DefaultQueuePollRPS is the history queue read rate of tempest dev's embedded Temporal:
// in development a Go app's worker often runs in its own process (no eager start), and at
// Temporal's default of 20 each of its back-to-back starts would wait up to 50 ms more.
const DefaultQueuePollRPS = 1000

const usage = `tempest: Inngest-style events and step functions on Temporal

Usage:
  tempest dev   [flags]   embedded Temporal + Web UI, Redis (REDIS_URL or embedded), event API, worker
  tempest serve [flags]   the gateway: event and REST API for every app of the environment, against
                          TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, REDIS_URL (--examples: and the examples)
  tempest worker          the example functions' worker only (app tempest-dev), publishing them to the registry
  tempest bench [flags]   measure ingest throughput and event -> first step latency vs raw Temporal

Client commands, against TEMPEST_URL (default http://127.0.0.1:8288) with INNGEST_SIGNING_KEY:
  tempest send NAME [--data JSON] [--id ID]       send an event (or JSON events on stdin)
  tempest runs list|get|trace|cancel|rerun        list and operate runs
  tempest replay start|status|cancel              bulk replay a function's runs
  tempest apps list | sync URL | resync APP       the apps; sync an Inngest SDK app ("Bring your Inngest app")
  Exit codes: 0 ok, 1 failed (server, network, auth), 2 bad usage or rejected input (400), 3 not found.

Run "tempest <command> -h" for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "dev":
		err = devCmd(ctx, os.Args[2:], os.Stdout)
	case "serve":
		err = serveCmd(ctx, os.Args[2:], os.Stdout)
	case "worker":
		err = workerCmd(ctx, os.Args[2:], os.Stdout)
	case "bench":
		err = benchCmd(ctx, os.Args[2:], os.Stdout)
	case "send":
		err = sendCmd(ctx, os.Args[2:], os.Stdin, os.Stdout)
	case "runs":
		err = runsCmd(ctx, os.Args[2:], os.Stdout)
	case "replay":
		err = replayCmd(ctx, os.Args[2:], os.Stdout, isTerminal(os.Stdout))
	case "apps":
		err = appsCmd(ctx, os.Args[2:], os.Stdout)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "tempest: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "tempest:", err)
		os.Exit(exitCode(err))
	}
}

// devConfig holds the flags of `tempest dev`.
type devConfig struct {
	IP             string
	Port           int
	TemporalPort   int
	UIPort         int
	DataDir        string
	InMemory       bool
	Retention      time.Duration
	MaxEventSize   int
	MaxRequestSize int64
	LogLevel       string
	TemporalDB     string
	QueuePollRPS   int
	Log            logConfig
	// SDKURLs are Inngest SDK apps to sync (-u), again every PollInterval (0: once).
	SDKURLs      repeated
	PollInterval time.Duration
}

func (c *devConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.IP, "ip", "127.0.0.1", "IP address to bind every listener to")
	fs.IntVar(&c.Port, "port", 8288, "port of the event API and REST API")
	fs.IntVar(&c.TemporalPort, "temporal-port", 7233, "port of the embedded Temporal frontend (gRPC)")
	fs.IntVar(&c.UIPort, "ui-port", 8233, "port of the Temporal Web UI (0 disables it)")
	fs.StringVar(&c.DataDir, "data-dir", ".tempest", "directory of the SQLite database")
	fs.BoolVar(&c.InMemory, "in-memory", false, "keep nothing on disk")
	fs.DurationVar(&c.Retention, "retention", 30*24*time.Hour, "how long closed runs (and events) are kept; at least 24h")
	fs.IntVar(&c.MaxEventSize, "max-event-size", adapter.DefaultMaxEventSize, "largest accepted event, in bytes")
	fs.Int64Var(&c.MaxRequestSize, "max-request-size", adapter.DefaultMaxRequestSize, "largest accepted request body of the event API, in bytes")
	fs.StringVar(&c.LogLevel, "log-level", "error", "log level of the embedded Temporal server (error, warn, info, debug)")
	fs.IntVar(&c.QueuePollRPS, "queue-poll-rps", DefaultQueuePollRPS, "reads per second of each history shard's transfer and timer queues of the embedded Temporal (Temporal's own default is 20: up to 50 ms more for starts whose worker runs in another process, 10-20% more throughput under load)")
	c.Log.flags(fs, false)
	fs.Var(&c.SDKURLs, "u", "serve URL of an Inngest SDK app to sync, like http://127.0.0.1:3000/api/inngest (repeatable, or comma-separated)")
	fs.Var(&c.SDKURLs, "sdk-url", "the same as -u")
	fs.DurationVar(&c.PollInterval, "poll-interval", 5*time.Second, "how often the -u apps are synced again (an unchanged app changes nothing); 0 syncs once")
	fs.StringVar(&c.TemporalDB, "temporal-db", "", "PostgreSQL for the embedded Temporal instead of SQLite: postgres://user@host:5432/dbname (dbname and dbname_visibility are created if missing)")
}

func devCmd(ctx context.Context, args []string, out io.Writer) error {
	var cfg devConfig
	fs := flag.NewFlagSet("tempest dev", flag.ContinueOnError)
	cfg.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return runDev(ctx, cfg, out, nil)
}

// devStack is what runDev brought up; tests read its addresses.
type devStack struct {
	APIURL, TemporalAddress, UIURL, RedisURL string
	App                                      *adapter.App
}

// runDev brings up the whole dev stack and blocks until ctx is done. ready, when set, is
// called once everything accepts requests.
func runDev(ctx context.Context, cfg devConfig, out io.Writer, ready func(devStack)) error {
	began := time.Now()
	if cfg.Log.format == "" { // a devConfig built without its flags (tests)
		cfg.Log = logConfig{format: "text", level: "info"}
	}
	logger, tp, stopTracing, err := cfg.Log.observability(ctx, out)
	if err != nil {
		return err
	}
	defer stopTracing()
	srv, err := devserver.Start(ctx, devserver.Options{
		IP: cfg.IP, Port: cfg.TemporalPort, UIPort: cfg.UIPort, DataDir: cfg.DataDir, InMemory: cfg.InMemory,
		Retention: cfg.Retention, SearchAttributes: adapter.SearchAttributes(), LogLevel: cfg.LogLevel,
		DatabaseURL: cfg.TemporalDB, QueuePollRPS: cfg.QueuePollRPS,
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

	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("event API port: %w", err)
	}
	// The event log: $DATABASE_URL, else SQLite next to Temporal's (a temporary file with
	// --in-memory, removed when dev stops).
	dbURL, logDesc := os.Getenv("DATABASE_URL"), "DATABASE_URL"
	if dbURL == "" {
		dir := cfg.DataDir
		if cfg.InMemory {
			if dir, err = os.MkdirTemp("", "tempest-dev-"); err != nil {
				ln.Close()
				return err
			}
			defer os.RemoveAll(dir)
		} else if err := os.MkdirAll(dir, 0o755); err != nil {
			ln.Close()
			return err
		}
		dbURL = "sqlite:" + filepath.Join(dir, "events.db")
		logDesc = "SQLite " + filepath.Join(dir, "events.db")
	}
	app, err := adapter.New(ctx, adapter.Options{
		AppID: "tempest-dev", TemporalAddress: srv.Address(), Namespace: srv.Namespace(), Redis: rdb,
		Dev: true, MaxEventSize: cfg.MaxEventSize, MaxRequestSize: cfg.MaxRequestSize, EventRetention: cfg.Retention,
		DatabaseURL: dbURL, Logger: logger, TracerProvider: tp,
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer app.Close()
	if err := examples.Register(app); err != nil {
		ln.Close()
		return err
	}
	st := devStack{
		APIURL: "http://" + ln.Addr().String(), TemporalAddress: srv.Address(), UIURL: srv.UIURL(),
		RedisURL: redisDesc, App: app,
	}
	errc := make(chan error, 1)
	go func() { errc <- app.ServeListener(ctx, ln) }()
	storage := "SQLite in " + cfg.DataDir
	if cfg.InMemory || cfg.TemporalDB != "" {
		storage = srv.Storage()
	}
	fmt.Fprintf(out, "Tempest dev is ready in %s\n", time.Since(began).Round(time.Millisecond))
	fmt.Fprintf(out, "  Event API:   %s/e/{key}   (any key is accepted in dev)\n", st.APIURL)
	fmt.Fprintf(out, "  REST API:    %s/v1\n", st.APIURL)
	fmt.Fprintf(out, "  Temporal:    %s  namespace %q (%s, retention %s)\n", st.TemporalAddress, srv.Namespace(), storage, cfg.Retention)
	if st.UIURL != "" {
		fmt.Fprintf(out, "  Web UI:      %s/namespaces/%s/workflows\n", st.UIURL, srv.Namespace())
	}
	fmt.Fprintf(out, "  Event log:   %s\n", logDesc)
	fmt.Fprintf(out, "  Redis:       %s\n", redisDesc)
	fmt.Fprintf(out, "  Functions:   tempest-dev-hello-world (demo/hello.world), tempest-dev-charge (demo/charge.requested)\n")
	fmt.Fprintf(out, "Try: curl -s %s/e/dev -d '{\"name\":\"demo/hello.world\",\"data\":{\"name\":\"Ada\"}}'\n", st.APIURL)
	if len(cfg.SDKURLs) > 0 {
		// The first sync is tried before dev reports ready; then every PollInterval.
		syncer := &appSyncer{app: app, log: logger, state: map[string]string{}}
		syncer.syncAll(ctx, cfg.SDKURLs)
		if cfg.PollInterval > 0 {
			go syncer.poll(ctx, cfg.SDKURLs, cfg.PollInterval)
		}
	}
	if ready != nil {
		ready(st)
	}
	err = <-errc
	fmt.Fprintln(out, "Tempest dev stopped")
	return err
}

// devRedis connects to REDIS_URL, or starts the embedded fallback (in memory).
func devRedis() (redis.UniversalClient, string, func(), error) {
	if url := os.Getenv("REDIS_URL"); url != "" {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, "", nil, fmt.Errorf("REDIS_URL %q: %w", url, err)
		}
		c := redis.NewClient(opts)
		return c, url + " (REDIS_URL)", func() { c.Close() }, nil
	}
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return nil, "", nil, fmt.Errorf("embedded redis: %w", err)
	}
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	return c, "embedded, in memory at " + m.Addr() + " (set REDIS_URL to use a real Redis)", func() { c.Close(); m.Close() }, nil
}

func serveCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tempest serve", flag.ContinueOnError)
	addr := fs.String("addr", adapter.DefaultAddr, `listen address of the event API and REST API (":8288" is every interface)`)
	maxEvent := fs.Int("max-event-size", adapter.DefaultMaxEventSize, "largest accepted event, in bytes")
	maxRequest := fs.Int64("max-request-size", adapter.DefaultMaxRequestSize, "largest accepted request body of the event API, in bytes")
	insecure := fs.Bool("insecure-no-auth", false, "INSECURE: without INNGEST_SIGNING_KEY, leave the REST API (/v1) open to anyone who can reach it")
	withExamples := fs.Bool("examples", false, "also run the example functions (app tempest-dev) and their worker in this process")
	var lc logConfig
	lc.flags(fs, true)
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger, tp, stopTracing, err := lc.observability(ctx, out)
	if err != nil {
		return err
	}
	defer stopTracing()
	// Without --examples, serve is the gateway: the event and REST API of every app of the
	// environment, with no functions and no worker of its own.
	appID := "tempest-gateway"
	if *withExamples {
		appID = "tempest-dev"
	}
	app, err := adapter.New(ctx, adapter.Options{
		AppID: appID, Addr: *addr, MaxEventSize: *maxEvent, MaxRequestSize: *maxRequest, InsecureNoAuth: *insecure,
		Logger: logger, TracerProvider: tp,
	})
	if err != nil {
		return err
	}
	defer app.Close()
	if *withExamples {
		if err := examples.Register(app); err != nil {
			return err
		}
	}
	// Every reason not to start is reported before the banner.
	if err := app.CheckServe(); err != nil {
		return err
	}
	o := app.Options()
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Addr, err)
	}
	if *withExamples {
		fmt.Fprintf(out, "Tempest serve: API on %s, Temporal %s namespace %q, environment %q, examples on task queue %q\n",
			ln.Addr(), o.TemporalAddress, o.Namespace, o.Environment, o.TaskQueue)
	} else {
		fmt.Fprintf(out, "Tempest serve: gateway on %s for the apps of environment %q, Temporal %s namespace %q\n",
			ln.Addr(), o.Environment, o.TemporalAddress, o.Namespace)
	}
	fmt.Fprintf(out, "  event log: %s\n", redacted(o.DatabaseURL))
	return app.ServeListener(ctx, ln)
}

// redacted is a database URL without its password.
func redacted(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

// workerCmd runs the example functions' worker against TEMPORAL_ADDRESS and REDIS_URL: an
// app apart from the gateway, as a user's own Go app would run with app.Worker.
func workerCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tempest worker", flag.ContinueOnError)
	var lc logConfig
	lc.flags(fs, true)
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger, tp, stopTracing, err := lc.observability(ctx, out)
	if err != nil {
		return err
	}
	defer stopTracing()
	app, err := adapter.New(ctx, adapter.Options{AppID: "tempest-dev", Logger: logger, TracerProvider: tp})
	if err != nil {
		return err
	}
	defer app.Close()
	if err := examples.Register(app); err != nil {
		return err
	}
	o := app.Options()
	fmt.Fprintf(out, "Tempest worker: app %q on task queue %q, environment %q, Temporal %s namespace %q\n",
		o.AppID, o.TaskQueue, o.Environment, o.TemporalAddress, o.Namespace)
	return app.Worker(ctx)
}
