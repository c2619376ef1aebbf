package crashtest

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/tempestrun/tempest/internal/testenv"
)

// Temporal becomes unreachable twice under load (every connection cut): the starts in
// flight fail after their admission in Redis, the requests are answered 5xx and retried,
// and every acknowledged event has its runs in both functions.
func TestTemporalOutageLosesNoAcknowledgedEvent(t *testing.T) {
	tc, rdb := testenv.Services(t)
	o := testenv.NewOutage(t, testenv.Server().Address())
	via, err := client.Dial(client.Options{HostPort: o.Addr(), Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
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
		o.Set(true)
		time.Sleep(1500 * time.Millisecond) // requests meet an unreachable Temporal
		o.Set(false)
	}
	acks, retries := load.wait()
	checkRuns(t, tc, rdb, appID, dbURL, acks, fmt.Sprintf("through %d Temporal outages (%d retried requests)", outages, retries))
}
