package devserver

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
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

// journalMode reads the journal mode stored in a SQLite file (WAL is persistent).
func journalMode(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	return mode
}

// The SQLite database runs in WAL mode, on disk and in memory; an in-memory server leaves
// no file behind.
func TestSQLiteIsWALAndInMemoryLeavesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Start(ctx, Options{DataDir: dir, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	got := journalMode(t, filepath.Join(dir, "temporal.db"))
	var indexes int
	db, err := sql.Open("sqlite", filepath.Join(dir, "temporal.db"))
	if err != nil {
		t.Fatal(err)
	}
	err = db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'executions_visibility' AND name LIKE 'by_%'`).Scan(&indexes)
	db.Close()
	s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if want := 57 - len(unusedVisibilityIndexes); indexes != want {
		t.Fatalf("%d visibility indexes, want %d", indexes, want)
	}
	if got != "wal" {
		t.Fatalf("data dir database: journal mode %q, want wal", got)
	}

	s, err = Start(ctx, Options{InMemory: true, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	ram := s.opts.ramDir
	got = journalMode(t, filepath.Join(ram, "temporal.db"))
	s.Stop()
	if got != "wal" {
		t.Fatalf("in-memory database: journal mode %q, want wal", got)
	}
	if _, err := os.Stat(ram); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("in-memory database dir %s after Stop: %v, want it removed", ram, err)
	}
}
