package adapter

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// startFaults injects failures between admission and StartWorkflow, for tests that prove a
// failed start is never acknowledged as done (function slug -> *faultCounter). Empty
// outside tests: the check is one map lookup.
var startFaults sync.Map

type faultCounter struct{ left int32 }

var errInjected = errors.New("injected start failure")

// startDelays slows the starts of a function's runs (slug -> time.Duration), for tests of
// a dispatch backlog. Empty outside tests.
var startDelays sync.Map

func injectedStartFault(slug string) error {
	if d, ok := startDelays.Load(slug); ok {
		time.Sleep(d.(time.Duration))
	}
	v, ok := startFaults.Load(slug)
	if !ok {
		return nil
	}
	if atomic.AddInt32(&v.(*faultCounter).left, -1) >= 0 {
		return errInjected
	}
	return nil
}
