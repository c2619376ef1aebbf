package devserver

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/common/log"
	pgschema "go.temporal.io/server/schema/postgresql/v12"
	sqltool "go.temporal.io/server/tools/sql"
)

// testPostgresURL is the URL of a fresh database on the test PostgreSQL
// ($TEMPEST_TEST_POSTGRES), dropped with its visibility database when the test ends.
// Without a reachable PostgreSQL the test fails under CI and is skipped elsewhere.
func testPostgresURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TEMPEST_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/"
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TEMPEST_TEST_POSTGRES %q: %v", base, err)
	}
	u.Path = "/tempest_test_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	m, v, err := postgresConfigs(u.String())
	if err != nil {
		t.Fatal(err)
	}
	admin := *m
	admin.DatabaseName = "" // the server's default database
	conn, err := sqltool.NewConnection(&admin, log.NewNoopLogger())
	if err == nil {
		err = conn.Exec("SELECT 1")
	}
	if err != nil {
		err = connectCause(&admin, err)
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL at %s is unreachable (.ci/run starts it; set TEMPEST_TEST_POSTGRES to another): %v", m.ConnectAddr, err)
		}
		t.Skipf("no PostgreSQL at %s (start it, or set TEMPEST_TEST_POSTGRES=postgres://user@host:port/): %v", m.ConnectAddr, err)
	}
	t.Cleanup(func() {
		defer conn.Close()
		for _, name := range []string{m.DatabaseName, v.DatabaseName} {
			// The server's pools may still be closing: end their sessions first.
			_ = conn.Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name)
			if err := conn.DropDatabase(name); err != nil {
				t.Errorf("drop database %s: %v", name, err)
			}
		}
	})
	return u.String()
}

// testSearchAttributes are set on every run runGreetings starts.
var testSearchAttributes = map[string]enumspb.IndexedValueType{"TempestTestKey": enumspb.INDEXED_VALUE_TYPE_KEYWORD}

func greet(_ workflow.Context, name string) (string, error) { return "hello " + name, nil }

// runGreetings starts n workflows (ids spread over the history shards), waits for each
// result through a worker registered here, and returns their ids.
func runGreetings(t *testing.T, s *Server, n int) []string {
	t.Helper()
	ctx := context.Background()
	c, err := client.Dial(client.Options{HostPort: s.Address(), Namespace: s.Namespace(), Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := worker.New(c, "pg-test", worker.Options{})
	w.RegisterWorkflowWithOptions(greet, workflow.RegisterOptions{Name: "greet"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	key := temporal.NewSearchAttributeKeyKeyword("TempestTestKey")
	var ids []string
	for i := range n {
		id := fmt.Sprintf("greet-%d-%d", time.Now().UnixNano(), i)
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: id, TaskQueue: "pg-test", WorkflowExecutionTimeout: time.Minute,
			TypedSearchAttributes: temporal.NewSearchAttributes(key.ValueSet("k")),
		}, "greet", "pg")
		if err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
		var got string
		if err := run.Get(ctx, &got); err != nil || got != "hello pg" {
			t.Fatalf("workflow %s: %q, %v", id, got, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// The server runs on PostgreSQL with 4 history shards, keeps its runs across a restart on
// the existing schema, and refuses another shard count with an error that says what to set.
func TestPostgresShardsRestartAndMismatch(t *testing.T) {
	dbURL := testPostgresURL(t)
	ctx := context.Background()
	opts := Options{
		DatabaseURL: dbURL, HistoryShards: 4, Port: -1,
		SearchAttributes: testSearchAttributes,
	}
	began := time.Now()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first start (databases and schema created): %s", time.Since(began))
	ids := runGreetings(t, s, 8)
	s.Stop()
	m, _, _ := postgresConfigs(dbURL)
	if n, err := storedShardCount(ctx, m, log.NewNoopLogger()); err != nil || n != 4 {
		t.Fatalf("stored shard count %d, %v; want 4", n, err)
	}

	opts.HistoryShards = 0 // takes the database's count
	began = time.Now()
	s, err = Start(ctx, opts)
	if err != nil {
		t.Fatalf("second start on the existing schema: %v", err)
	}
	t.Logf("second start: %s", time.Since(began))
	if s.HistoryShards() != 4 {
		t.Errorf("HistoryShards() = %d after a restart with 0, want the database's 4", s.HistoryShards())
	}
	c, err := client.Dial(client.Options{HostPort: s.Address(), Namespace: s.Namespace(), Logger: discard})
	if err != nil {
		s.Stop()
		t.Fatal(err)
	}
	for _, id := range ids {
		d, err := c.DescribeWorkflowExecution(ctx, id, "")
		if err != nil || d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			t.Errorf("workflow %s after restart: %v, %v", id, d.GetWorkflowExecutionInfo().GetStatus(), err)
		}
	}
	sa, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: s.Namespace()})
	if err != nil || sa.GetCustomAttributes()["TempestTestKey"] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
		t.Errorf("search attribute TempestTestKey after restart: %v, %v", sa.GetCustomAttributes(), err)
	}
	runGreetings(t, s, 1)
	c.Close()
	s.Stop()

	opts.HistoryShards = 8
	_, err = Start(ctx, opts)
	if err == nil || !strings.Contains(err.Error(), "created with 4 history shards, not 8") || !strings.Contains(err.Error(), "HistoryShards to 4") {
		t.Fatalf("err = %v, want one naming the stored 4 shards and what to set", err)
	}
}

// A database whose schema is older than this server's is updated at start.
func TestPostgresOlderSchemaIsUpdated(t *testing.T) {
	dbURL := testPostgresURL(t)
	m, v, err := postgresConfigs(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	logger := log.NewNoopLogger()
	if err := setupPostgres(m, pgTemporalSchema, "1.17", logger); err != nil {
		t.Fatal(err)
	}
	if err := setupPostgres(v, pgVisibilitySchema, "1.12", logger); err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), Options{DatabaseURL: dbURL, Port: -1, SearchAttributes: testSearchAttributes})
	if err != nil {
		t.Fatal(err)
	}
	runGreetings(t, s, 1)
	s.Stop()
	for cfg, want := range map[string]string{m.DatabaseName: pgschema.Version, v.DatabaseName: pgschema.VisibilityVersion} {
		c := *m
		c.DatabaseName = cfg
		conn, err := sqltool.NewConnection(&c, logger)
		if err != nil {
			t.Fatal(err)
		}
		got, err := conn.ReadSchemaVersion()
		conn.Close()
		if err != nil || got != want {
			t.Errorf("schema of %s is %q (%v), want %s", cfg, got, err, want)
		}
	}
}
