// Command profshare tells what share of a profile (CPU, or allocated bytes) the metrics
// and tracing code takes: a sample counts when, walking from its leaf towards the root, a
// frame of Prometheus, OpenTelemetry, Temporal's tracing interceptor, the SDK's metrics
// wrappers or internal/metrics comes before a frame of any other code (runtime and standard
// library frames are skipped). A span or counter update counts; the work an interceptor
// wraps does not. Background GC is not attributed: scale it by the allocation share.
//
//	go test ./adapter -run '^$' -bench 'MetricsOverhead/on' -benchtime 300x -cpuprofile /tmp/cpu.out
//	go run ./internal/cmd/profshare /tmp/cpu.out
package main

import (
	"fmt"
	"os"
	"regexp"
	"sort"

	"github.com/google/pprof/profile"
)

var (
	instr   = regexp.MustCompile(`github.com/prometheus/|go.opentelemetry.io/|go.temporal.io/sdk/contrib/opentelemetry|tempest/internal/metrics|go.temporal.io/sdk/internal/common/metrics|go.temporal.io/sdk/interceptor.\(\*tracingInterceptor|go.temporal.io/sdk/interceptor.\(\*tracing`)
	neutral = regexp.MustCompile(`^(runtime|internal/|sync|sort|strings|strconv|bytes|unicode|math|reflect|fmt|encoding/|time|slices|maps|errors|context|hash|crypto|io|bufio|os|syscall|aeshash|memeqbody|indexbyte|github.com/cespare/xxhash)`)
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: profshare <profile>")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	p, err := profile.Parse(f)
	if err != nil {
		panic(err)
	}
	var total, hit int64
	by := map[string]int64{}
	for _, s := range p.Sample {
		v := s.Value[1] // CPU: nanoseconds; heap: alloc_space
		total += v
	walk:
		for _, loc := range s.Location {
			for i := 0; i < len(loc.Line); i++ { // inlined frames: innermost first
				name := loc.Line[i].Function.Name
				if instr.MatchString(name) {
					hit += v
					by[name] += v
					break walk
				}
				if !neutral.MatchString(name) {
					break walk
				}
			}
		}
	}
	fmt.Printf("metrics and tracing: %.2f%% of %s\n", 100*float64(hit)/float64(total), p.SampleType[1].Type)
	type kv struct {
		k string
		v int64
	}
	var l []kv
	for k, v := range by {
		l = append(l, kv{k, v})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].v > l[j].v })
	for i, e := range l {
		if i == 15 {
			break
		}
		fmt.Printf("  %6.2f%% %s\n", 100*float64(e.v)/float64(total), e.k)
	}
}
