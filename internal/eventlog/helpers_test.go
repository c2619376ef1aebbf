package eventlog

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// clock is the injected time: it moves only when a test says so.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// store is one fresh, empty store that several Logs may open.
type store struct {
	backend string
	url     string
	clock   *clock
}

// postgresBase is the server tests create their databases on.
func postgresBase(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEMPEST_TEST_POSTGRES")
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("set TEMPEST_TEST_POSTGRES to a PostgreSQL server tests may create databases on, e.g. postgres://postgres@127.0.0.1:5432/")
		}
		t.Skip("TEMPEST_TEST_POSTGRES is not set (e.g. postgres://postgres@127.0.0.1:5432/): skipping PostgreSQL")
	}
	return u
}

var dbSeq atomic.Int64

// newStore makes an empty store of backend, removed when the test ends.
func newStore(t testing.TB, backend string) *store {
	t.Helper()
	s := &store{backend: backend, clock: newClock()}
	switch backend {
	case "sqlite":
		s.url = "sqlite:" + filepath.Join(t.TempDir(), "events.db")
	case "postgres":
		s.url = newPostgresDB(t, postgresBase(t))
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	return s
}

// newPostgresDB creates a database with a unique name on the server at base and drops it
// when the test ends.
func newPostgresDB(t testing.TB, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TEMPEST_TEST_POSTGRES %q: %v", base, err)
	}
	name := fmt.Sprintf("tempest_eventlog_%d_%d_%s", os.Getpid(), dbSeq.Add(1), strings.ToLower(ulid.Make().String()[20:]))
	admin := *u
	admin.Path = "/postgres"
	db, err := sql.Open("pgx", admin.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE DATABASE ` + name); err != nil {
		t.Fatalf("create database on %s: %v", admin.Redacted(), err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", admin.String())
		if err != nil {
			t.Error(err)
			return
		}
		defer db.Close()
		if _, err := db.Exec(`DROP DATABASE ` + name + ` WITH (FORCE)`); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// open opens a Log on s with its clock; mod adjusts the options.
func (s *store) open(t testing.TB, mod ...func(*Options)) *Log {
	t.Helper()
	o := Options{URL: s.url, Now: s.clock.Now}
	for _, m := range mod {
		m(&o)
	}
	l, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("Open(%s): %v", s.backend, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

var backends = []string{"sqlite", "postgres"}

// each runs fn against a fresh store of every backend, in parallel.
func each(t *testing.T, fn func(t *testing.T, s *store)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			fn(t, newStore(t, b))
		})
	}
}

// newID is a random event id.
func newID() string { return ulid.MustNew(ulid.Now(), rand.Reader).String() }

// ev is a typical record.
func ev(name string) Record {
	return Record{InternalID: newID(), Name: name, Event: []byte(`{"name":"` + name + `","data":{"n":1}}`)}
}

func withClient(r Record, id string) Record {
	r.ClientID = id
	return r
}

// far is a lease that holds for the whole test.
func (s *store) far() time.Time { return s.clock.Now().Add(time.Hour) }

func mustAppend(t testing.TB, l *Log, env string, recs ...Record) []Appended {
	t.Helper()
	out, err := l.Append(context.Background(), env, recs, time.Time{})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(out) != len(recs) {
		t.Fatalf("Append returned %d results for %d events", len(out), len(recs))
	}
	return out
}

// count is the number of rows in the store (all environments).
func count(t testing.TB, l *Log) int {
	t.Helper()
	var n int
	if err := l.db.QueryRow(`SELECT COUNT(*) FROM tempest_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
