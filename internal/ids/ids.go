// Package ids makes the ULIDs Tempest hands out: event ids (random, or derived from the
// Inngest SDKs' x-inngest-event-id-seed header so a retried send gets the same ids) and
// run ids (derived from function and event, so a retried send never starts a second run).
package ids

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// Seed is a parsed x-inngest-event-id-seed header: "<unix millis>,<base64 of 10 bytes>".
type Seed struct {
	ms      uint64
	entropy [10]byte
}

// ParseSeed parses the header; ok is false for an empty or malformed value, which callers
// treat as "no seed" (random ids), as Inngest does.
func ParseSeed(h string) (s Seed, ok bool) {
	msPart, entPart, found := strings.Cut(strings.TrimSpace(h), ",")
	if !found {
		return s, false
	}
	ms, err := strconv.ParseUint(msPart, 10, 64)
	if err != nil || ms > ulid.MaxTime() {
		return s, false
	}
	ent, err := base64.StdEncoding.DecodeString(entPart)
	if err != nil || len(ent) != 10 {
		return s, false
	}
	s.ms = ms
	copy(s.entropy[:], ent)
	return s, true
}

// EventID is the id of the event at index i (0-based) of a request carrying seed s: the
// 1-based index is added to the last four entropy bytes, so every event of a batch gets its
// own id and a retry of the same request gets the same ones.
func (s Seed) EventID(i int) ulid.ULID {
	var id ulid.ULID
	_ = id.SetTime(s.ms)
	ent := s.entropy
	n := binary.BigEndian.Uint32(ent[6:]) + uint32(i+1)
	binary.BigEndian.PutUint32(ent[6:], n)
	_ = id.SetEntropy(ent[:])
	return id
}

// NewEventID is a random id stamped with now.
func NewEventID(now time.Time) ulid.ULID {
	return ulid.MustNew(ulid.Timestamp(now), rand.Reader)
}

// RunID derives the id of the run of function slug for event id: same inputs, same run.
// It keeps the event's timestamp so run ids sort like the events that caused them.
func RunID(slug string, event ulid.ULID) ulid.ULID {
	h := sha256.Sum256([]byte(slug + "\x00" + event.String()))
	var id ulid.ULID
	_ = id.SetTime(event.Time())
	_ = id.SetEntropy(h[:10])
	return id
}
