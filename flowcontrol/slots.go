package flowcontrol

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxSlotWaiters bounds the steps of one process that wait for a concurrency slot inside
// their local activity (each holds a worker's local-activity slot); past it a step waits
// in a workflow timer instead.
const maxSlotWaiters = 256

// SlotWaker hands a released concurrency slot to the steps waiting for it in this process:
// Release publishes the key, and every process's one subscription wakes its waiters of that
// key, which ask for the slot again at once (the fairness order of Acquire still decides
// who gets it). Nothing here is needed for correctness: a lost message only leaves a
// waiter to its next periodic ask.
type SlotWaker struct {
	rdb   redis.UniversalClient
	once  sync.Once
	ps    *redis.PubSub
	room  chan struct{}
	mu    sync.Mutex
	waits map[string]map[chan struct{}]struct{}
}

// NewSlotWaker returns a waker on rdb; it subscribes on first use.
func NewSlotWaker(rdb redis.UniversalClient) *SlotWaker {
	return &SlotWaker{rdb: rdb, room: make(chan struct{}, maxSlotWaiters), waits: map[string]map[chan struct{}]struct{}{}}
}

func (w *SlotWaker) start() {
	w.ps = w.rdb.Subscribe(context.Background(), freedChannel)
	ch := w.ps.Channel()
	go func() {
		for m := range ch {
			w.mu.Lock()
			for c := range w.waits[m.Payload] {
				select {
				case c <- struct{}{}:
				default:
				}
			}
			w.mu.Unlock()
		}
	}()
}

// AcquireWaiting calls acquire until it succeeds, hold passes, ctx ends or stop says so,
// asking again as soon as a lease of one of keys is released (at least once a second: a
// lost message costs at most that). Past maxSlotWaiters waiting steps in this process it
// asks once and returns.
func (w *SlotWaker) AcquireWaiting(ctx context.Context, keys []string, hold time.Duration, acquire func() (bool, error), stop func() bool) (bool, error) {
	select {
	case w.room <- struct{}{}:
		defer func() { <-w.room }()
	default:
		return acquire()
	}
	w.once.Do(w.start)
	// Listen before asking: a release between a refusal and the wait still wakes us.
	c := make(chan struct{}, 1)
	w.mu.Lock()
	for _, k := range keys {
		if w.waits[k] == nil {
			w.waits[k] = map[chan struct{}]struct{}{}
		}
		w.waits[k][c] = struct{}{}
	}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		for _, k := range keys {
			delete(w.waits[k], c)
			if len(w.waits[k]) == 0 {
				delete(w.waits, k)
			}
		}
		w.mu.Unlock()
	}()
	deadline := time.Now().Add(hold)
	for {
		ok, err := acquire()
		if ok || err != nil {
			return ok, err
		}
		left := time.Until(deadline)
		if left <= 0 || stop() {
			return false, nil
		}
		t := time.NewTimer(min(left, time.Second))
		select {
		case <-c:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, nil
		}
		t.Stop()
	}
}

// Notify tells every process that a lease of key was released.
func (w *SlotWaker) Notify(ctx context.Context, key string) error {
	return w.rdb.Publish(ctx, freedChannel, key).Err()
}

// Close ends the subscription.
func (w *SlotWaker) Close() {
	w.once.Do(func() {}) // no subscription after Close
	if w.ps != nil {
		_ = w.ps.Close()
	}
}
