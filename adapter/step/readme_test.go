package step_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README's step snippets are the examples of this package and of group, verbatim.
func TestREADMEShowsTheExamples(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var sources string
	for _, f := range []string{"example_test.go", "../group/example_test.go", "../tempesttest/example_test.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources += string(b)
	}
	shown := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	n := 0
	for _, m := range shown {
		if !regexp.MustCompile(`^(// .*\n)*func Example`).MatchString(m[1]) {
			continue
		}
		n++
		if !strings.Contains(sources, m[1]) {
			t.Errorf("the README shows an example that is not in the example files as written:\n%s", m[1])
		}
	}
	if n < 7 {
		t.Errorf("the README shows %d examples, want the 7 step APIs", n)
	}
}
