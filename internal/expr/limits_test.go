package expr

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// literal is a CEL list of the numbers 0..n-1.
func literal(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprint(i)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func TestLengthLimit(t *testing.T) {
	t.Parallel()
	pad := func(n int) string { // a valid expression of exactly n bytes
		return `event.data.s == "` + strings.Repeat("x", n-len(`event.data.s == ""`)) + `"`
	}
	if _, err := CompileBool(pad(MaxLength)); err != nil {
		t.Fatalf("an expression of %d bytes: %v", MaxLength, err)
	}
	_, err := CompileBool(pad(MaxLength + 1))
	if err == nil || !strings.Contains(err.Error(), "4097 bytes, over the limit of 4096") {
		t.Fatalf("an expression of %d bytes: %v", MaxLength+1, err)
	}
}

// Literals nested too deep are refused before type checking: 200 nested maps took cel-go's
// checker seconds.
func TestLiteralDepthLimit(t *testing.T) {
	t.Parallel()
	maps := func(n int) string { return strings.Repeat(`{"a":`, n-1) + "{}" + strings.Repeat("}", n-1) + " == {}" }
	if _, err := CompileBool(maps(MaxLiteralDepth)); err != nil {
		t.Fatalf("maps nested %d deep: %v", MaxLiteralDepth, err)
	}
	for _, src := range []string{maps(MaxLiteralDepth + 1), maps(200), strings.Repeat("[", 200) + strings.Repeat("]", 200) + " == []"} {
		if _, err := CompileBool(src); err == nil || !strings.Contains(err.Error(), "deep, over the limit of 16") {
			t.Errorf("%.30s...: %v", src, err)
		}
	}
}

// Expressions that exceed the budget whatever the event fail to compile: each of these
// makes a million comprehension steps per evaluation.
func TestCompileRejectsExpensive(t *testing.T) {
	t.Parallel()
	l := literal(100)
	for _, src := range []string{
		l + `.exists(x, ` + l + `.exists(y, ` + l + `.exists(z, x + y + z < 0)))`,
		l + `.map(x, ` + l + `.map(y, ` + l + `.map(z, x * y * z))).size() > 0`,
	} {
		_, err := CompileBool(src)
		if err == nil || !strings.Contains(err.Error(), "over the limit of 20000: avoid nested") {
			t.Errorf("%.40s...: %v", src, err)
		}
	}
	if _, err := CompileBool(literal(100) + `.exists(x, event.data.n == x)`); err != nil {
		t.Errorf("a scan of a 100-element list: %v", err)
	}
}

// Expressions whose cost depends on the event stop at the budget. Before the limit, for
// this event of 200 KiB: the nested scan made 4 million steps, the concatenations copied
// 1 GB and allocated 400 MB, the comparisons traversed the 100 000-element list 2000 times.
func TestEvalStopsAtCostLimit(t *testing.T) {
	t.Parallel()
	items := make([]any, 2000)
	for i := range items {
		items[i] = float64(i)
	}
	big := make([]any, 100_000)
	for i := range big {
		big[i] = float64(i)
	}
	vars := map[string]any{"event": map[string]any{"name": "a/b", "data": map[string]any{
		"items": items, "big": big, "s": strings.Repeat("ab", 50_000),
	}}}
	for _, src := range []string{
		`event.data.items.exists(x, event.data.items.exists(y, x == y + 0.5))`,
		`event.data.s` + strings.Repeat(` + event.data.s`, 150) + ` == ""`,
		`event.data.items.map(x, event.data.s + event.data.s).size() == 0`,
		`event.data.items.exists(x, event.data.big == event.data.items)`,
		`event.data.items.exists(x, event.data.big == event.data.big)`,
		`event.data.items.exists(x, -1.0 in event.data.big)`,
	} {
		p, err := CompileBool(src)
		if err != nil {
			t.Fatalf("%.40s...: %v", src, err)
		}
		if _, err := p.Eval(vars); !errors.Is(err, ErrTooExpensive) || !strings.Contains(err.Error(), "limit of 20000") {
			t.Errorf("%.40s...: Eval err %v, want ErrTooExpensive", src, err)
		}
		if ok, err := p.Matches(vars); ok || !errors.Is(err, ErrTooExpensive) {
			t.Errorf("%.40s...: Matches = %v, %v", src, ok, err)
		}
		if p.Match(vars) {
			t.Errorf("%.40s...: an evaluation over the limit matched", src)
		}
	}
	for _, src := range []string{
		`event.data.items.exists(x, x == 1999)`,
		`event.data.items.size() == 2000 && event.data.s.startsWith("ab")`,
		`event.name == "a/b"`,
	} {
		p, err := CompileBool(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if ok, err := p.Matches(vars); !ok || err != nil {
			t.Errorf("%s = %v, %v; want true", src, ok, err)
		}
	}
}
