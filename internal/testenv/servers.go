package testenv

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Postgres is the test PostgreSQL ($TEMPEST_TEST_POSTGRES, default
// postgres://postgres@127.0.0.1:5432/) as a base URL to create databases on; without one the
// test fails under CI and is skipped elsewhere.
func Postgres(t testing.TB) *url.URL {
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

// RedisServer is a redis-server of the test's own, with AOF fsynced on every write (the
// production setting for no loss), that the test can SIGKILL and restart on its data.
type RedisServer struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
}

// StartRedis starts a redis-server of the test's own on a free port; it is killed when the
// test ends.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &RedisServer{t: t, port: port, dir: t.TempDir()}
	r.Start()
	t.Cleanup(r.Kill)
	return r
}

// Start (re)starts the server on its data and waits until it answers.
func (r *RedisServer) Start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); c.Ping(context.Background()).Err() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			r.t.Fatal("redis-server did not start within 10s")
		}
	}
}

// Kill stops the server with SIGKILL.
func (r *RedisServer) Kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
	}
}

// Addr is host:port.
func (r *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// Outage is a TCP proxy to a real service that can go down (every connection is cut and new
// ones are closed at once) and come back.
type Outage struct {
	ln    net.Listener
	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

// NewOutage proxies to target until the test ends.
func NewOutage(t testing.TB, target string) *Outage {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &Outage{ln: ln, conns: map[net.Conn]struct{}{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o.mu.Lock()
			down := o.down
			o.mu.Unlock()
			if down {
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			o.mu.Lock()
			o.conns[c], o.conns[up] = struct{}{}, struct{}{}
			o.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); o.Set(true) })
	return o
}

// Addr is the proxy's host:port.
func (o *Outage) Addr() string { return o.ln.Addr().String() }

// Set takes the service down (cutting every connection) or brings it back.
func (o *Outage) Set(down bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down = down
	if down {
		for c := range o.conns {
			c.Close()
		}
		clear(o.conns)
	}
}
