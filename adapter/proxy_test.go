package adapter_test

import (
	"io"
	"net"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tempestrun/tempest/internal/testenv"
)

// proxy forwards TCP connections to a real service until stop, after which its port
// refuses connections, as a service that went down would.
type proxy struct {
	addr    string
	ln      net.Listener
	mu      sync.Mutex
	conns   []net.Conn
	stopped bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String(), ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			if p.stopped {
				c.Close()
				up.Close()
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) stop() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// redisProxy is a proxy to the test Redis with a client that goes through it.
type redisProxy struct {
	*proxy
	client *redis.Client
}

func newRedisProxy(t *testing.T) *redisProxy {
	t.Helper()
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	p := &redisProxy{proxy: newProxy(t, opts.Addr)}
	opts.Addr = p.addr
	opts.MaxRetries = -1 // fail at once once it is down
	p.client = redis.NewClient(opts)
	t.Cleanup(func() { p.client.Close() })
	return p
}
