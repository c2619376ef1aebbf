package crashtest

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/tempestrun/tempest/internal/testenv"
)

// outage is a TCP proxy to a real service that can go down (every connection is cut and new
// ones are closed at once) and come back.
type outage struct {
	ln    net.Listener
	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func newOutage(t *testing.T, target string) *outage {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &outage{ln: ln, conns: map[net.Conn]struct{}{}}
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
	t.Cleanup(func() { ln.Close(); o.set(true) })
	return o
}

func (o *outage) addr() string { return o.ln.Addr().String() }

func (o *outage) set(down bool) {
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

// Temporal becomes unreachable twice under load (every connection cut): the starts in
// flight fail after their admission in Redis, the requests are answered 5xx and retried,
// and every acknowledged event has its runs in both functions.
func TestTemporalOutageLosesNoAcknowledgedEvent(t *testing.T) {
	tc, rdb := testenv.Services(t)
	o := newOutage(t, testenv.Server().Address())
	via, err := client.Dial(client.Options{HostPort: o.addr(), Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(via.Close) // after the app that uses it
	appID := fmt.Sprintf("temporal-outage-%d", time.Now().UnixNano()%1e9)
	t.Cleanup(func() { testenv.DropEnvironment(appID) })
	dbURL := sqliteLog(t)
	addr := serveInProcess(t, appID, via, rdb, dbURL)

	const events, outages = 400, 2
	// Clients give up after 1 s, inside the 1.5 s outage: ingests are cut between their
	// Redis decisions and their starts.
	load := sendLoad(addr, appID, events, time.Second)
	for k := range outages {
		load.waitAcked(int64((k + 1) * events / (outages + 2)))
		o.set(true)
		time.Sleep(1500 * time.Millisecond) // requests meet an unreachable Temporal
		o.set(false)
	}
	acks, retries := load.wait()
	checkRuns(t, tc, rdb, appID, dbURL, acks, fmt.Sprintf("through %d Temporal outages (%d retried requests)", outages, retries))
}
