package expr

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Arbitrary expressions compile or fail with an error, never a panic; those that compile
// evaluate over arbitrary JSON events within the cost bound, and Match agrees with Eval.
func FuzzCompileEval(f *testing.F) {
	ev := `{"name":"shop/order.paid","data":{"total":150,"email":"a@b.c","items":[{"sku":"x","qty":2}],"tags":["vip"]},"ts":1700000000000}`
	for _, src := range []string{
		`event.data.total >= 100`, `event.data.email != ""`, `event.name.startsWith("shop/")`,
		`event.data.items.exists(i, i.sku == "x" && i.qty > 1)`, `"vip" in event.data.tags`,
		`event.data.orderId == async.data.orderId`, `event.data.plan == "enterprise" ? 300 : 0`,
		`has(event.data.user) && size(event.data.tags) > 0`, `event.data.email.matches("^[a-z]+@")`,
		`event.data.items.map(i, i.qty).filter(q, q > 1).size() == 1`, `int(event.data.total) % 7`,
		`event.data.tags.exists(x, event.data.tags.exists(y, x == y))`, `event.data.s + event.data.s`,
		`timestamp(event.data.at) < now`, `[1,2,3].map(x, [1,2,3].map(y, x * y))`, `((((event))))`,
		`event.data == async.data`, `event.data.total / 0`, `event..data`, "\x00", strings.Repeat("(", 300),
		strings.Repeat(`{"a":`, 100) + "{}" + strings.Repeat("}", 100),
	} {
		f.Add(src, []byte(ev))
	}
	f.Add(`event.data.x.exists(a, a.exists(b, b > 0))`, []byte(`{"data":{"x":[[1,2],[3],[]]}}`))
	f.Add(`event.data == event.data`, []byte(`{"data":{"a":{"b":{"c":[1,[2,[3,[4]]]]}}}}`))
	f.Fuzz(func(t *testing.T, src string, event []byte) {
		p, err := Compile(src)
		if err != nil {
			return
		}
		if len(src) > MaxLength {
			t.Fatalf("compiled an expression of %d bytes", len(src))
		}
		var m map[string]any
		if json.Unmarshal(event, &m) != nil {
			m = map[string]any{}
		}
		vars := map[string]any{"event": m, "async": m}
		out, details, err := p.prg.Eval(vars)
		if err == nil {
			if c := details.ActualCost(); c == nil || *c > MaxCost {
				t.Fatalf("%q cost %v, over %d", src, c, MaxCost)
			}
		}
		v, err := p.Eval(vars)
		if err != nil && errors.Is(err, ErrTooExpensive) != strings.Contains(err.Error(), "cost limit") {
			t.Fatalf("%q: cost error not recognised: %v", src, err)
		}
		b, isBool := v.(bool)
		if got := p.Match(vars); got != (err == nil && isBool && b) {
			t.Fatalf("%q: Match %v, Eval %v %v (first eval %v)", src, got, v, err, out)
		}
	})
}
