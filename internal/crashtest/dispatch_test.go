package crashtest

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tempestrun/tempest/internal/testenv"
)

// Events accepted while Temporal is unreachable are committed to the log but cannot be
// dispatched; the process is then killed (SIGKILL) with all of them undispatched. Another
// process on the same log, once Temporal is back and the dead process's leases ran out,
// dispatches every one: each has exactly one run per function.
func TestKilledBeforeDispatchLosesNothing(t *testing.T) {
	tc, rdb := testenv.Services(t)
	o := testenv.NewOutage(t, testenv.Server().Address())
	appID := fmt.Sprintf("undispatched-%d", time.Now().UnixNano()%1e9)
	t.Cleanup(func() { testenv.DropEnvironment(appID) })
	dbURL := sqliteLog(t)
	addr := freeAddr(t)
	p := startChild(t, addr, o.Addr(), appID, "DATABASE_URL="+dbURL)
	waitReady(t, addr) // its worker has started: the event API serves

	o.Set(true) // Temporal unreachable: every dispatch fails from now on
	const events = 100
	acks, retries := sendLoad(addr, appID, events, 5*time.Second).wait()
	if retries > 0 {
		t.Errorf("%d sends were refused while Temporal was down; the log should take them all", retries)
	}
	_ = p.cmd.Process.Kill()
	<-p.done

	o.Set(false)
	startChild(t, addr, o.Addr(), appID, "DATABASE_URL="+dbURL)
	checkRuns(t, tc, rdb, appID, dbURL, acks, "while Temporal was down, then the process was killed before dispatching them")
	for _, fn := range functions {
		if n := countRuns(t, tc, appID+"-"+fn, events); n != events {
			t.Errorf("%s has %d runs for %d events", fn, n, events)
		}
	}
}

// waitReady waits until the process at addr answers GET /ready with 200.
func waitReady(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not ready after 30 s: %v", addr, err)
		}
	}
}
