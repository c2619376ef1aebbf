package api

import (
	"errors"
	"io"
	"sync"
)

// budget counts the request-body bytes held by requests being decoded and ingested, so
// that many large bodies at once cannot exhaust memory.
type budget struct {
	mu        sync.Mutex
	used, max int64
}

func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *budget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

var errBusy = errors.New("too many request bytes in flight")

// meteredReader takes budget for a body of unknown length as its bytes arrive.
type meteredReader struct {
	r     io.Reader
	b     *budget
	taken int64
}

func (m *meteredReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if n > 0 {
		if !m.b.take(int64(n)) {
			return 0, errBusy
		}
		m.taken += int64(n)
	}
	return n, err
}
