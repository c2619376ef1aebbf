package expr

import "testing"

func TestMatch(t *testing.T) {
	t.Parallel()
	ev := map[string]any{"event": map[string]any{"name": "a/b", "data": map[string]any{"n": 5.0, "s": "x"}}}
	cases := []struct {
		src  string
		want bool
	}{
		{`event.data.n > 3`, true},
		{`event.data.n == 5`, true},
		{`event.data.s == "y"`, false},
		{`event.data.missing == 1`, false},
		{`event.name.startsWith("a/")`, true},
	}
	for _, c := range cases {
		p, err := CompileBool(c.src)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		if got := p.Match(ev); got != c.want {
			t.Errorf("%s = %v, want %v", c.src, got, c.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	for _, src := range []string{`event.data.n >`, `nope == 1`, `"a string"`} {
		if _, err := CompileBool(src); err == nil {
			t.Errorf("CompileBool(%q) accepted an invalid expression", src)
		}
	}
}
