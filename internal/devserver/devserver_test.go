package devserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	_ "modernc.org/sqlite"
)

// A data dir keeps the namespace across restarts, and a changed retention is applied.
func TestDataDirSurvivesRestartAndRetentionApplies(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for _, retention := range []time.Duration{48 * time.Hour, 72 * time.Hour} {
		s, err := Start(ctx, Options{DataDir: dir, Port: -1, Retention: retention})
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(client.Options{HostPort: s.Address(), Logger: discard})
		if err != nil {
			s.Stop()
			t.Fatal(err)
		}
		ns, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "default"})
		c.Close()
		s.Stop()
		if err != nil {
			t.Fatal(err)
		}
		if got := ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(); got != retention {
			t.Fatalf("retention %s, want %s", got, retention)
		}
	}
}

func TestRetentionBelowMinimumIsRejected(t *testing.T) {
	if _, err := Start(context.Background(), Options{InMemory: true, Retention: time.Hour}); err == nil {
		t.Fatal("a 1h retention was accepted")
	}
}

// A data dir keeps the shard count it was created with; asking for another is an error
// that says what to set, and 0 takes the stored count.
func TestSQLiteShardCountIsChecked(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Start(ctx, Options{DataDir: dir, Port: -1, HistoryShards: 2})
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if _, err := Start(ctx, Options{DataDir: dir, Port: -1, HistoryShards: 1}); err == nil || !strings.Contains(err.Error(), "created with 2 history shards, not 1") {
		t.Fatalf("err = %v, want a shard mismatch", err)
	}
	s, err = Start(ctx, Options{DataDir: dir, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if s.HistoryShards() != 2 {
		t.Fatalf("HistoryShards() = %d, want the stored 2", s.HistoryShards())
	}
}

// queryOne is the one value query returns from the SQLite file at path.
func queryOne(t *testing.T, path, query string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow(query).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// journalMode reads the journal mode stored in a SQLite file (WAL is persistent).
func journalMode(t *testing.T, path string) string { return queryOne(t, path, "PRAGMA journal_mode") }

// The SQLite databases run in WAL mode, on disk and in memory, visibility's without the
// unused indexes; an in-memory server leaves no file behind.
func TestSQLiteIsWALAndInMemoryLeavesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Start(ctx, Options{DataDir: dir, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	modes := []string{journalMode(t, filepath.Join(dir, "temporal.db")), journalMode(t, filepath.Join(dir, "visibility.db"))}
	indexes := visibilityIndexes(t, filepath.Join(dir, "visibility.db"))
	s.Stop()
	if want := strconv.Itoa(57 - len(unusedVisibilityIndexes)); indexes != want {
		t.Fatalf("%s visibility indexes, want %s", indexes, want)
	}
	if modes[0] != "wal" || modes[1] != "wal" {
		t.Fatalf("data dir databases: journal modes %q, want wal", modes)
	}

	s, err = Start(ctx, Options{InMemory: true, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	ram := s.opts.ramDir
	got := journalMode(t, filepath.Join(ram, "temporal.db"))
	s.Stop()
	if got != "wal" {
		t.Fatalf("in-memory database: journal mode %q, want wal", got)
	}
	if _, err := os.Stat(ram); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("in-memory database dir %s after Stop: %v, want it removed", ram, err)
	}
}

func visibilityIndexes(t *testing.T, path string) string {
	return queryOne(t, path, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'executions_visibility' AND name LIKE 'by_%'`)
}

// A data dir made before visibility had a file of its own keeps it in temporal.db, and
// its runs are listed there; a new one lists them from visibility.db.
func TestSQLiteVisibilityLayouts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	run := func(wantFile string) {
		t.Helper()
		s, err := Start(ctx, Options{DataDir: dir, Port: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Stop()
		c, err := client.Dial(client.Options{HostPort: s.Address(), Logger: discard})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		id := "layout-" + filepath.Base(wantFile)
		if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "nobody"}, "Nothing"); err != nil {
			t.Fatal(err)
		}
		if err := c.TerminateWorkflow(ctx, id, "", "done"); err != nil {
			t.Fatal(err)
		}
		// Visibility is written after the run closes: wait for its closed row.
		for {
			resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: "WorkflowId = '" + id + "' AND ExecutionStatus = 'Terminated'"})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.GetExecutions()) == 1 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
		db, err := sql.Open("sqlite", wantFile)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM executions_visibility WHERE workflow_id = ?`, id).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s: %d rows of %s (%v), want 1", wantFile, n, id, err)
		}
	}
	run(filepath.Join(dir, "visibility.db"))
	for _, f := range []string{"visibility.db", "visibility.db-wal", "visibility.db-shm"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	run(filepath.Join(dir, "temporal.db"))
	if _, err := os.Stat(filepath.Join(dir, "visibility.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an older data dir got a visibility.db: %v", err)
	}
}

// An in-memory server removes the in-memory databases of processes that are gone (killed,
// or a test binary that never stopped its server), and leaves a live process's alone.
func TestInMemoryRemovesStaleDatabases(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skipf("no `true` to make a pid that is gone: %v", err)
	}
	stale := filepath.Join(ramRoot(), fmt.Sprintf("tempest-temporal-%d-stale", gone.Process.Pid))
	live := filepath.Join(ramRoot(), fmt.Sprintf("tempest-temporal-%d-live", os.Getppid()))
	for _, dir := range []string{stale, live} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "temporal.db"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.RemoveAll(stale); os.RemoveAll(live) })
	s, err := Start(context.Background(), Options{InMemory: true, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s of a process that is gone: %v, want it removed", stale, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("%s of a live process: %v, want it kept", live, err)
	}
}
