package crashtest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/internal/devserver"
	"github.com/tempestrun/tempest/internal/testenv"
)

// postgresBase is the test PostgreSQL ($TEMPEST_TEST_POSTGRES); without one the test fails
// under CI and is skipped elsewhere.
func postgresBase(t *testing.T) *url.URL {
	t.Helper()
	base := os.Getenv("TEMPEST_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/"
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TEMPEST_TEST_POSTGRES %q: %v", base, err)
	}
	admin := *u
	admin.Path = "/postgres"
	if out, err := exec.Command("psql", admin.String(), "-qAtc", "select 1").CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL at %s is unreachable (.ci/run starts it): %v %s", u.Host, err, out)
		}
		t.Skipf("no PostgreSQL at %s: %v %s", u.Host, err, out)
	}
	return u
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The production shape on one machine: Temporal on PostgreSQL with 4 history shards, two
// gateway replicas and two apps in processes of their own, one Redis. Events with their own
// ids go to either gateway; one gateway is killed with SIGKILL mid-load and comes back.
// Every acknowledged event has exactly one run in each app's function: none lost, none twice.
func TestProductionShapeLosesAndDuplicatesNothing(t *testing.T) {
	pg := postgresBase(t)
	db := fmt.Sprintf("tempest_shape_%d", time.Now().UnixNano()%1e9)
	dbURL := *pg
	dbURL.Path = "/" + db
	srv, err := devserver.Start(context.Background(), devserver.Options{DatabaseURL: dbURL.String(), HistoryShards: 4, Port: -1,
		SearchAttributes: adapter.SearchAttributes()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Stop()
		admin := *pg
		admin.Path = "/postgres"
		for _, name := range []string{db, db + "_visibility"} {
			_ = exec.Command("psql", admin.String(), "-qc", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)").Run()
		}
	})
	temporal := srv.Address()
	env := fmt.Sprintf("shape-%d", time.Now().UnixNano()%1e9)
	envVar := envEnv + "=" + env
	startChild(t, "", temporal, env+"-shop", envVar, envFunctions+"=left")
	startChild(t, "", temporal, env+"-mail", envVar, envFunctions+"=right")
	gateways := []string{freeAddr(t), freeAddr(t)}
	g0 := startChild(t, gateways[0], temporal, env+"-gw", envVar, envFunctions+"=none")
	startChild(t, gateways[1], temporal, env+"-gw", envVar, envFunctions+"=none")

	const events = 400
	load := sendLoadTo(gateways, env, events, 5*time.Second)
	load.waitAcked(events / 3)
	_ = g0.cmd.Process.Kill()
	<-g0.done
	startChild(t, gateways[0], temporal, env+"-gw", envVar, envFunctions+"=none")
	acks, retries := load.wait()

	tc, err := client.Dial(client.Options{HostPort: temporal, Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_, rdb := testenv.Services(t)
	checker, err := adapter.New(context.Background(), adapter.Options{AppID: env + "-checker", Environment: env, Temporal: tc, Redis: rdb, Dev: true,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer checker.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lost, partial := 0, 0
	for _, a := range acks {
		runs, err := checker.EventRuns(ctx, a.internal)
		if err != nil {
			t.Fatalf("event %s: %v", a.clientID, err)
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
	// No function ran an event twice: each has exactly one run per event (visibility lags
	// a moment behind the runs' completion).
	for fn, app := range map[string]string{"left": env + "-shop", "right": env + "-mail"} {
		query := fmt.Sprintf("%s = '%s-%s'", adapter.SAFunctionID.GetName(), app, fn)
		var n int64
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			res, err := tc.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
			if err != nil {
				t.Fatal(err)
			}
			if n = res.GetCount(); n >= events || time.Now().After(deadline) {
				break
			}
		}
		if n != events {
			t.Errorf("%s has %d runs for %d events", fn, n, events)
		}
	}
	t.Logf("%d events through 2 gateways (one killed) to 2 apps on Temporal/PostgreSQL with %d shards (%d retried requests): %d without runs, %d partial",
		len(acks), srv.HistoryShards(), retries, lost, partial)
	if lost+partial > 0 {
		t.Fatalf("%d acknowledged events have no run, %d miss a function's run", lost, partial)
	}
}
