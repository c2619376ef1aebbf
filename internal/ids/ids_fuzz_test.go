package ids

import (
	"encoding/base64"
	"strconv"
	"testing"

	"github.com/oklog/ulid/v2"
)

// format is the header the SDKs send for s.
func (s Seed) format() string {
	return strconv.FormatUint(s.ms, 10) + "," + base64.StdEncoding.EncodeToString(s.entropy[:])
}

// Any header parses without panicking; a seed that parses gives ids stamped with its
// millis, distinct within a request, and survives formatting and parsing again.
func FuzzParseSeed(f *testing.F) {
	for _, h := range []string{
		"1700000000000," + base64.StdEncoding.EncodeToString([]byte("0123456789")),
		" 1700000000000,AAAAAAAAAAAAAA== ", "0,/////////////w==", "281474976710655,AAAAAAAAAAAAAA==",
		"281474976710656,AAAAAAAAAAAAAA==", "18446744073709551616,AAAAAAAAAAAAAA==", "-1,AAAAAAAAAAAAAA==",
		"", ",", "12", "12,", "12,notbase64!", "12,c2hvcnQ=", "1,AAAA\nAAAAAAAAAA==", "+1,AAAAAAAAAAAAAA==",
	} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		s, ok := ParseSeed(h)
		if !ok {
			return
		}
		if s.ms > ulid.MaxTime() {
			t.Fatalf("%q: millis %d beyond a ULID's time", h, s.ms)
		}
		seen := map[ulid.ULID]bool{}
		for i := range 4 {
			id := s.EventID(i)
			if id.Time() != s.ms {
				t.Fatalf("%q: event %d stamped %d, want %d", h, i, id.Time(), s.ms)
			}
			if seen[id] {
				t.Fatalf("%q: event %d repeats an id", h, i)
			}
			seen[id] = true
		}
		again, ok := ParseSeed(s.format())
		if !ok || again != s {
			t.Fatalf("%q: formatted as %q, parsed back %v %v", h, s.format(), again, ok)
		}
	})
}

// Every (millis, 10 bytes) a client can send as a seed parses back to itself.
func FuzzSeedRoundTrip(f *testing.F) {
	f.Add(uint64(1700000000000), []byte("0123456789"))
	f.Add(uint64(0), make([]byte, 10))
	f.Add(ulid.MaxTime(), []byte{255, 255, 255, 255, 255, 255, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, ms uint64, ent []byte) {
		if ms > ulid.MaxTime() || len(ent) != 10 {
			return
		}
		var s Seed
		s.ms = ms
		copy(s.entropy[:], ent)
		got, ok := ParseSeed(s.format())
		if !ok || got != s {
			t.Fatalf("%q parsed as %v %v", s.format(), got, ok)
		}
	})
}
