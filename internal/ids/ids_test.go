package ids

import (
	"encoding/base64"
	"testing"
	"time"
)

func TestSeedGivesStableDistinctIDs(t *testing.T) {
	t.Parallel()
	h := "1700000000000," + base64.StdEncoding.EncodeToString([]byte("0123456789"))
	s, ok := ParseSeed(h)
	if !ok {
		t.Fatal("valid seed rejected")
	}
	s2, _ := ParseSeed(h)
	if s.EventID(0) != s2.EventID(0) {
		t.Fatal("same seed and index gave different ids")
	}
	if s.EventID(0) == s.EventID(1) {
		t.Fatal("two events of one batch got the same id")
	}
	if got := s.EventID(0).Time(); got != 1700000000000 {
		t.Fatalf("id time = %d, want the seed's millis", got)
	}
	for _, bad := range []string{"", "abc", "12,notbase64!", "12," + base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, ok := ParseSeed(bad); ok {
			t.Errorf("ParseSeed(%q) accepted a malformed seed", bad)
		}
	}
}

func TestRunIDDependsOnFunctionAndEvent(t *testing.T) {
	t.Parallel()
	e1, e2 := NewEventID(time.Now()), NewEventID(time.Now())
	if RunID("a", e1) != RunID("a", e1) {
		t.Fatal("run id not deterministic")
	}
	if RunID("a", e1) == RunID("b", e1) || RunID("a", e1) == RunID("a", e2) {
		t.Fatal("run ids collide across functions or events")
	}
	if RunID("a", e1).Time() != e1.Time() {
		t.Fatal("run id does not keep the event's time")
	}
}
