package eventlog

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// appendTimeout bounds one group-commit transaction, so a wedged store fails the calls
// instead of holding the writer (and every later call) forever.
const appendTimeout = time.Minute

// call is one Append waiting for the writer.
type call struct {
	ctx  context.Context
	rows []*row
	done chan error // buffered: the writer never waits for the caller
}

// writer is the one goroutine that writes a Log's appends, coalescing the calls queued
// while the previous transaction committed.
type writer struct {
	l        *Log
	calls    chan *call
	closing  chan struct{}
	exited   chan struct{}
	stopOnce sync.Once
	// txns counts transactions begun (tests check that group commit groups).
	txns int64
	// beforeTx, when set (tests), runs before each transaction.
	beforeTx func()
}

func startWriter(l *Log) *writer {
	w := &writer{l: l, calls: make(chan *call, 1024), closing: make(chan struct{}), exited: make(chan struct{})}
	go w.run()
	return w
}

func (w *writer) append(ctx context.Context, rows []*row) ([]Appended, error) {
	c := &call{ctx: ctx, rows: rows, done: make(chan error, 1)}
	select {
	case <-w.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	case w.calls <- c:
	}
	var err error
	select {
	case err = <-c.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-w.exited:
		select {
		case err = <-c.done:
		default:
			return nil, ErrClosed // queued after the writer's last look
		}
	}
	if err != nil {
		return nil, err
	}
	out := make([]Appended, len(rows))
	for i, r := range rows {
		out[i] = r.result()
	}
	return out, nil
}

// stop ends the writer after its transaction in flight; false if it was stopped already.
func (w *writer) stop() bool {
	first := false
	w.stopOnce.Do(func() { first = true; close(w.closing) })
	<-w.exited
	return first
}

func (w *writer) run() {
	defer close(w.exited)
	var next *call // taken from the queue but left for the next transaction (MaxBatch)
	for {
		select {
		case <-w.closing:
			w.fail(next)
			return
		default:
		}
		group := []*call{next}
		if next == nil {
			select {
			case group[0] = <-w.calls:
			case <-w.closing:
				w.fail(nil)
				return
			}
		}
		next = nil
		n := len(group[0].rows)
	fill:
		for n < w.l.o.MaxBatch {
			select {
			case c := <-w.calls:
				if n+len(c.rows) > w.l.o.MaxBatch {
					next = c
					break fill
				}
				group = append(group, c)
				n += len(c.rows)
			default:
				break fill
			}
		}
		w.commit(group)
	}
}

// fail answers ErrClosed to c and to every queued call.
func (w *writer) fail(c *call) {
	if c != nil {
		c.done <- ErrClosed
	}
	for {
		select {
		case c := <-w.calls:
			c.done <- ErrClosed
		default:
			return
		}
	}
}

// commit writes the calls of group that still wait in one transaction.
func (w *writer) commit(group []*call) {
	var live []*call
	var calls [][]*row
	for _, c := range group {
		if err := c.ctx.Err(); err != nil {
			c.done <- err
			continue
		}
		live = append(live, c)
		calls = append(calls, c.rows)
	}
	if len(live) == 0 {
		return
	}
	b := newBatch(calls)
	if w.beforeTx != nil {
		w.beforeTx()
	}
	w.txns++
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	err := w.l.writeTx(ctx, func(tx *sql.Tx) error { return b.write(ctx, w.l, tx) })
	cancel()
	if err != nil {
		err = fmt.Errorf("eventlog: append to %s: %w", w.l.name, err)
	}
	for _, c := range live {
		c.done <- err
	}
}
