package eventlog

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Replicas starting together migrate once; reopening migrates nothing; a newer schema is
// refused.
func TestMigrate(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		var wg sync.WaitGroup
		logs := make([]*Log, 4)
		for i := range logs {
			wg.Go(func() {
				l, err := Open(context.Background(), Options{URL: s.url})
				if err != nil {
					t.Error(err)
					return
				}
				logs[i] = l
			})
		}
		wg.Wait()
		for _, l := range logs {
			if l != nil {
				_ = l.Close()
			}
		}
		l := s.open(t)
		if l.Backend() != s.backend {
			t.Errorf("Backend() = %q, want %q", l.Backend(), s.backend)
		}
		var versions int
		if err := l.db.QueryRow(`SELECT COUNT(*) FROM tempest_eventlog_migrations`).Scan(&versions); err != nil {
			t.Fatal(err)
		}
		if versions != len(migrations(l.d)) {
			t.Fatalf("%d migrations recorded, want %d", versions, len(migrations(l.d)))
		}
		if _, err := l.db.Exec(`INSERT INTO tempest_eventlog_migrations (version, applied_at_ms) VALUES (99, 0)`); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(context.Background(), Options{URL: s.url}); err == nil || !strings.Contains(err.Error(), "newer than this binary") {
			t.Fatalf("Open on a newer schema: %v", err)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		o    Options
		want string // in the error
		not  string // not in the error
	}{
		{"no URL", Options{}, "URL is required", ""},
		{"negative window", Options{URL: "x.db", DedupWindow: -1}, "DedupWindow", ""},
		{"negative batch", Options{URL: "x.db", MaxBatch: -1}, "MaxBatch", ""},
		{"unreachable postgres", Options{URL: "postgres://ada:s3cret@127.0.0.1:1/db"}, "ada:xxxxx@127.0.0.1:1", "s3cret"},
		{"empty sqlite path", Options{URL: "sqlite:"}, "has no path", ""},
		{"memory sqlite", Options{URL: "sqlite::memory:"}, "use a file path", ""},
		{"missing directory", Options{URL: filepath.Join(dir, "no", "such", "events.db")}, "does its directory exist", ""},
	} {
		_, err := Open(context.Background(), c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) || (c.not != "" && strings.Contains(err.Error(), c.not)) {
			t.Errorf("%s: Open error = %v, want one with %q", c.name, err, c.want)
		}
	}
}

func TestSQLiteURLForms(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, u := range []string{filepath.Join(dir, "plain.db"), "sqlite:" + filepath.Join(dir, "a.db"), "sqlite://" + filepath.Join(dir, "b.db")} {
		l, err := Open(context.Background(), Options{URL: u})
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		var mode string
		if err := l.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("%s: journal_mode %q, %v; want wal", u, mode, err)
		}
		var sync int
		if err := l.db.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
			t.Errorf("%s: synchronous %d, %v; want 2 (FULL)", u, sync, err)
		}
		_ = l.Close()
	}
}
