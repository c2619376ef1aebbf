package crashtest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/internal/devserver"
	"github.com/tempestrun/tempest/internal/testenv"
)

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
	pg := testenv.Postgres(t)
	db := fmt.Sprintf("tempest_shape_%d", time.Now().UnixNano()%1e9)
	dbURL := *pg
	dbURL.Path = "/" + db
	srv, err := devserver.Start(context.Background(), devserver.Options{DatabaseURL: dbURL.String(), HistoryShards: 4, Port: -1,
		SearchAttributes: adapter.SearchAttributes()})
	if err != nil {
		t.Fatal(err)
	}
	// The event log every gateway and app of the environment shares.
	logURL := *pg
	logURL.Path = "/" + db + "_events"
	admin := *pg
	admin.Path = "/postgres"
	if out, err := exec.Command("psql", admin.String(), "-qc", "CREATE DATABASE "+db+"_events").CombinedOutput(); err != nil {
		t.Fatalf("create the event log's database: %v %s", err, out)
	}
	dbEnv := "DATABASE_URL=" + logURL.String()
	t.Cleanup(func() {
		srv.Stop()
		for _, name := range []string{db, db + "_visibility", db + "_events"} {
			_ = exec.Command("psql", admin.String(), "-qc", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)").Run()
		}
	})
	temporal := srv.Address()
	env := fmt.Sprintf("shape-%d", time.Now().UnixNano()%1e9)
	t.Cleanup(func() { testenv.DropEnvironment(env) })
	envVar := envEnv + "=" + env
	startChild(t, "", temporal, env+"-shop", envVar, dbEnv, envFunctions+"=left")
	// Two worker processes of the mail app: its concurrency limit holds across both.
	startChild(t, "", temporal, env+"-mail", envVar, dbEnv, envFunctions+"=right,limited,exclusive,unlimited,throttled")
	startChild(t, "", temporal, env+"-mail", envVar, dbEnv, envFunctions+"=right,limited,exclusive,unlimited,throttled")
	gateways := []string{freeAddr(t), freeAddr(t)}
	g0 := startChild(t, gateways[0], temporal, env+"-gw", envVar, dbEnv, envFunctions+"=none")
	startChild(t, gateways[1], temporal, env+"-gw", envVar, dbEnv, envFunctions+"=none")

	const events, throttled = 400, 12
	sendNamedTo(t, gateways, "crash/limited", 30)
	sendNamedTo(t, gateways, "crash/throttled", throttled)
	spans := sendNamedTo(t, gateways, "crash/spans", 20)
	load := sendLoadTo(gateways, env, events, 5*time.Second)
	load.waitAcked(events / 3)
	_ = g0.cmd.Process.Kill()
	<-g0.done
	startChild(t, gateways[0], temporal, env+"-gw", envVar, dbEnv, envFunctions+"=none")
	acks, retries := load.wait()

	tc, err := client.Dial(client.Options{HostPort: temporal, Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_, rdb := testenv.Services(t)
	checker := newChecker(t, tc, rdb, env, logURL.String())
	lost, partial := missingRuns(t, checker, tc, acks)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// No function ran an event twice: each has exactly one run per event.
	for _, slug := range []string{env + "-shop-left", env + "-mail-right"} {
		if n := countRuns(t, tc, slug, events); n != events {
			t.Errorf("%s has %d runs for %d events", slug, n, events)
		}
	}
	// The rate limit held across both gateways; the concurrency limit across both workers.
	if n := countRuns(t, tc, env+"-mail-limited", 3); n != 3 {
		t.Errorf("the rate-limited function ran %d times for 30 events through 2 gateways, want 3 (limit 20/h from idle)", n)
	}
	// The throttle held across both gateways and both workers: 2 at once from idle, then one
	// per 500 ms, by when the steps began (clocks of one machine; 50 ms for the log's rounding).
	var begins []int64
	for deadline := time.Now().Add(time.Minute); len(begins) < throttled && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := rdb.LRange(ctx, beginsKey(env), 0, -1).ScanSlice(&begins); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(begins)
	if len(begins) != throttled {
		t.Errorf("%d of %d throttled runs began", len(begins), throttled)
	}
	for i := 2; i < len(begins); i++ {
		if early := time.Duration(begins[0]+int64(i-1)*500-begins[i]) * time.Millisecond; early > 50*time.Millisecond {
			t.Errorf("throttled run %d began %s before its slot (2/s across 2 gateways): %v", i, early, begins)
		}
	}
	for _, id := range spans {
		runs, err := checker.EventRuns(ctx, id)
		if err != nil || len(runs) != 2 {
			t.Fatalf("event %s: %v %v, want a run of exclusive and of unlimited", id, runs, err)
		}
		for _, r := range runs {
			if err := tc.GetWorkflow(ctx, r.RunID, "").Get(ctx, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	most := map[string]int{}
	for _, fn := range []string{"exclusive", "unlimited"} {
		most[fn], _ = rdb.Get(ctx, spansKey(env, fn)+":max").Int()
	}
	if most["exclusive"] != 1 || most["unlimited"] < 2 {
		t.Errorf("at most %d steps of the Limit 1 function ran at once across two workers, %d of the unlimited one (which must overlap for the test to see a violation)",
			most["exclusive"], most["unlimited"])
	}
	t.Logf("%d events through 2 gateways (one killed) to 2 apps on Temporal/PostgreSQL with %d shards (%d retried requests): %d without runs, %d partial",
		len(acks), srv.HistoryShards(), retries, lost, partial)
	if lost+partial > 0 {
		t.Fatalf("%d acknowledged events have no run, %d miss a function's run", lost, partial)
	}
}

// countRuns counts a function's runs in Temporal's visibility, which lags the runs a
// moment: it waits up to 30 s for want, then returns what it sees.
func countRuns(t *testing.T, tc client.Client, slug string, want int64) int64 {
	t.Helper()
	query := fmt.Sprintf("%s = '%s'", adapter.SAFunctionID.GetName(), slug)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		res, err := tc.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatal(err)
		}
		if n := res.GetCount(); n >= want || time.Now().After(deadline) {
			return n
		}
	}
}

// sendNamedTo sends n events of one name, alternating between the gateways, and returns
// their internal ids.
func sendNamedTo(t *testing.T, gateways []string, name string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		resp, err := http.Post("http://"+gateways[i%len(gateways)]+"/e/key", "application/json",
			strings.NewReader(fmt.Sprintf(`{"name":%q,"data":{"n":%d}}`, name, i)))
		if err != nil {
			t.Fatal(err)
		}
		var out struct{ IDs []string }
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || len(out.IDs) != 1 {
			t.Fatalf("send %s: %d %v %v", name, resp.StatusCode, out, err)
		}
		ids = append(ids, out.IDs[0])
	}
	return ids
}
