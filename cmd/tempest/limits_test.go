package main

import (
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
)

// --max-request-size reaches the event API: a larger body is a 413.
func TestDevMaxRequestSizeFlag(t *testing.T) {
	var cfg devConfig
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	cfg.flags(fs)
	if err := fs.Parse([]string{"--max-request-size", "2048"}); err != nil {
		t.Fatal(err)
	}
	dev := startDevWith(t, func(c *devConfig) { c.MaxRequestSize = cfg.MaxRequestSize })
	body := `{"name":"demo/hello.world","data":{"name":"` + strings.Repeat("a", 3000) + `"}}`
	resp, err := http.Post(dev.APIURL+"/e/dev", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(b), "max size of 2048 bytes") {
		t.Fatalf("HTTP %d %s", resp.StatusCode, b)
	}
}
