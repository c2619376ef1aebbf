package flowcontrol

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Gate is a function's throttle as a run carries it: checked again where the run begins
// its first step, so a backlog of runs whose scheduled slots have passed (workers were
// down or behind) still begins at the throttle's rate, across all processes.
type Gate struct {
	Function string `json:"function"`
	Key      string `json:"key"` // evaluated key value ("" for the whole function)
	Limit    int64  `json:"limit"`
	Burst    int64  `json:"burst,omitempty"`
	PeriodMS int64  `json:"period_ms"`
	// SlotMS is the run's scheduled start (unix ms) from its admission; a run that begins
	// within OnTime of it passes at once (0: always checked).
	SlotMS int64 `json:"slot_ms,omitempty"`
}

// onTime is how late after its slot a run still begins without the check: half an
// emission interval, at most 250 ms.
func (g Gate) onTime() float64 {
	return min(float64(g.PeriodMS)/float64(g.Limit)/2, 250)
}

var (
	//go:embed gate.lua
	gateSrc    string
	gateScript = redis.NewScript(gateSrc)
)

// PassGate asks whether runID may begin now; otherwise it says how long to wait before
// asking again.
func PassGate(ctx context.Context, rdb redis.UniversalClient, now time.Time, g Gate, runID string) (time.Duration, error) {
	tag := functionTag(g.Function)
	emission := float64(g.PeriodMS) / float64(g.Limit)
	ms, err := gateScript.Run(ctx, rdb, []string{tag + ":gate:" + hashed(g.Key), tag + ":gate-pass:" + runID},
		now.UnixMilli(), emission, emission*float64(g.Limit+g.Burst-1), g.PeriodMS+1000, g.SlotMS, g.onTime()).Int64()
	if err != nil {
		return 0, fmt.Errorf("throttle gate of %s: %w", g.Function, err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}
