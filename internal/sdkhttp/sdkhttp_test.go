package sdkhttp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		// RFC 8785 §3.2.2 and §3.2.3 examples.
		`{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}`: `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
		`{"\u20ac": 1, "\r": 2, "1": 3, "\ud83d\ude00": 4, "\u0080": 5, "\u00f6": 6, "\ufb33": 7}`:                                                                                       "{\"\\r\":2,\"1\":3,\"\u0080\":5,\"\u00f6\":6,\"\u20ac\":1,\"\U0001F600\":4,\"\ufb33\":7}",
		`{"b":{"z":1,"a":[1,2]},"a":"<&>"}`: `{"a":"<&>","b":{"a":[1,2],"z":1}}`,
		`1760000000000`:                     `1760000000000`,
		`-0.5`:                              `-0.5`,
	} {
		got, err := Canonical([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if string(got) != want {
			t.Errorf("Canonical(%s)\n got %s\nwant %s", in, got, want)
		}
	}
	if _, err := Canonical([]byte(`{"a":1} x`)); err == nil {
		t.Error("trailing data accepted")
	}
}

func TestSignVerify(t *testing.T) {
	key := "signkey-test-12345678"
	now := time.Unix(1760000000, 0)
	body := []byte(`{"a":1}`)
	sig := Sign(body, key, now)
	if !strings.HasPrefix(sig, "t=1760000000&s=") {
		t.Fatalf("signature %q", sig)
	}
	// The key is used as text without its prefix: the same HMAC for another env's prefix.
	if Sign(body, "signkey-prod-12345678", now) != sig {
		t.Error("the prefix changed the signature")
	}
	if err := Verify(sig, body, key, now.Add(time.Minute)); err != nil {
		t.Errorf("Verify: %v", err)
	}
	for name, err := range map[string]error{
		"other body": Verify(sig, []byte(`{"a":2}`), key, now),
		"other key":  Verify(sig, body, "signkey-test-87654321", now),
		"stale":      Verify(sig, body, key, now.Add(6*time.Minute)),
		"malformed":  Verify("s=abc", body, key, now),
	} {
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30s": 30 * time.Second, "1h30m": 90 * time.Minute, "2d": 48 * time.Hour, "1w": 7 * 24 * time.Hour,
		"1d12h": 36 * time.Hour, "500ms": 500 * time.Millisecond, "1m0s": time.Minute,
	} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "soon", "1y", "-"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

func TestRegisterConfig(t *testing.T) {
	body := `{"url":"http://127.0.0.1:3000/api/inngest","appName":"shop","sdk":"js:v4.24.0","functions":[
	 {"id":"shop-a","name":"A","triggers":[{"event":"shop/a","expression":"event.data.x > 1"},{"cron":"TZ=Europe/Paris 0 9 * * 1"}],
	  "steps":{"step":{"id":"step","name":"step","runtime":{"type":"http","url":"http://127.0.0.1:3000/api/inngest?fnId=shop-a&stepId=step"},"retries":{"attempts":2}}},
	  "concurrency":{"limit":5,"key":"event.data.c","scope":"account"},"throttle":{"limit":1,"period":"1d"},
	  "debounce":{"period":"5s","timeout":"1m"},"cancel":[{"event":"shop/stop","if":"event.data.id == async.data.id","timeout":"7d"}],
	  "Singleton":{"mode":"Skip"}},
	 {"id":"shop-b","triggers":[],"steps":{"step":{"runtime":{"url":"http://127.0.0.1:3000/api/inngest?fnId=shop-b"}}},"concurrency":3},
	 {"id":"shop-c","triggers":[],"steps":{"step":{"runtime":{"url":"http://x/api"}}},"concurrency":{"fn":[{"limit":2,"scope":"Env","key":"event.data.k"}]}}]}`
	r, err := ParseRegister([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.Functions[0].Config()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(a)
	want := `{"id":"shop-a","name":"A","triggers":[{"event":"shop/a","expression":"event.data.x \u003e 1"},{"cron":"TZ=Europe/Paris 0 9 * * 1"}],"retries":2,` +
		`"concurrency":[{"limit":5,"key":"event.data.c","scope":"env"}],"throttle":{"limit":1,"period":"24h0m0s"},` +
		`"debounce":{"period":"5s","timeout":"1m0s"},"cancel":[{"event":"shop/stop","if":"event.data.id == async.data.id","timeout":"168h0m0s"}],` +
		`"singleton":{"mode":"skip"},"url":"http://127.0.0.1:3000/api/inngest?fnId=shop-a\u0026stepId=step"}`
	if string(got) != want {
		t.Errorf("config\n got %s\nwant %s", got, want)
	}
	b, _ := r.Functions[1].Config()
	if b.Retries != DefaultRetries || len(b.Concurrency) != 1 || b.Concurrency[0].Limit != 3 {
		t.Errorf("defaults and a numeric concurrency: %+v", b)
	}
	c, _ := r.Functions[2].Config()
	if len(c.Concurrency) != 1 || c.Concurrency[0].Scope != "env" || c.Concurrency[0].Limit != 2 {
		t.Errorf("the Go SDK's concurrency shape: %+v", c.Concurrency)
	}
	for name, bad := range map[string]string{
		"no app":    `{"url":"http://x/api","functions":[]}`,
		"bad url":   `{"url":"ftp://x","appName":"a"}`,
		"not json":  `{`,
		"bad fn":    `{"url":"http://x/api","appName":"a"}`,
		"websocket": `{"url":"http://x/api","appName":"a","functions":[{"id":"a-f","steps":{"step":{"runtime":{"type":"ws"}}}}]}`,
		"duration":  `{"url":"http://x/api","appName":"a","functions":[{"id":"a-f","steps":{"step":{"runtime":{"url":"http://x/api"}}},"throttle":{"limit":1,"period":"soon"}}]}`,
	} {
		r, err := ParseRegister([]byte(bad))
		if err == nil {
			for _, f := range r.Functions {
				if _, err = f.Config(); err != nil {
					break
				}
			}
		}
		if name == "bad fn" {
			continue // no functions is a valid (empty) app
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func TestCheckSDK(t *testing.T) {
	for sdk, refused := range map[string]bool{
		"js:v3.22.0": true, "js:v3.53.1": true, "inngest-js:v3.30.2": true,
		"js:v3.21.9": false, "js:v3.54.0": false, "js:v4.24.0": false, "go:v0.16.0": false, "": false,
	} {
		if err := CheckSDK(sdk); (err != nil) != refused {
			t.Errorf("CheckSDK(%q) = %v, refused want %v", sdk, err, refused)
		}
	}
}

func TestReadAnswerStreamed(t *testing.T) {
	body := `   {"status":206,"headers":{"x-inngest-no-retry":"true","Retry-After":"5"},"body":"[{\"op\":\"StepRun\",\"id\":\"abc\",\"data\":1}]","version":2}`
	resp := &http.Response{StatusCode: 201, Header: http.Header{"X-Inngest-Sdk": {"inngest-js:v4.24.0"}}, Body: nopCloser{strings.NewReader(body)}}
	a, err := ReadAnswer(resp, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != 206 || !a.NoRetry || a.RetryAfter != 5*time.Second || len(a.Ops) != 1 || a.Ops[0].ID != "abc" {
		t.Fatalf("streamed answer: %+v", a)
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x"]}`, `1e21`, `"\u0000"`, `{"\ud83d\ude00":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := Canonical(doc)
		if err != nil {
			return
		}
		if !json.Valid(c) {
			t.Fatalf("Canonical(%q) = %q: not JSON", doc, c)
		}
		again, err := Canonical(c)
		if err != nil || string(again) != string(c) {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", doc, c, again, err)
		}
	})
}

func FuzzParseRegister(f *testing.F) {
	f.Add([]byte(`{"url":"http://x/api","appName":"a","functions":[{"id":"a-f","steps":{"step":{"runtime":{"url":"http://x/api"}}},"concurrency":[{"limit":1}],"throttle":{"limit":1,"period":"1d2h"}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRegister(body)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, fn := range r.Functions {
			if _, err := fn.Config(); err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
		}
	})
}

func FuzzReadAnswer(f *testing.F) {
	f.Add(206, []byte(`[{"op":"StepRun","id":"a","data":1}]`), "true", "5")
	f.Add(201, []byte(`  {"status":206,"headers":{"retry-after":"2026-01-01T00:00:00Z"},"body":"[]"}`), "", "")
	f.Add(500, []byte(`{"name":"Error","message":"boom"}`), "false", "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Fuzz(func(t *testing.T, status int, body []byte, noRetry, retryAfter string) {
		h := http.Header{"X-Inngest-Sdk": {"inngest-js:v4.24.0"}, "X-Inngest-No-Retry": {noRetry}, "Retry-After": {retryAfter}}
		a, err := ReadAnswer(&http.Response{StatusCode: status, Header: h, Body: nopCloser{strings.NewReader(string(body))}}, time.Unix(1760000000, 0))
		if err != nil {
			return
		}
		if a.RetryAfter != 0 && (a.RetryAfter < time.Second || a.RetryAfter > 24*time.Hour) {
			t.Fatalf("retry-after %q gave %s, outside [1s, 24h]", retryAfter, a.RetryAfter)
		}
		for _, op := range a.Ops {
			_ = op.Label()
			_, _ = op.Memo()
		}
		_ = ParseError(a.Body)
	})
}

// An app's server closes a keep-alive connection when it has been idle a while (node's
// default is 5 s); a call written onto it just then meets a reset. The call is sent again
// on a new connection, as a retry of the call would be: the app had not read it.
func TestCallSurvivesAClosedKeepAliveConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for conn := 0; ; conn++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(first bool) {
				defer c.Close()
				r := bufio.NewReader(c)
				for n := 0; ; n++ {
					req, err := http.ReadRequest(r)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if first && n == 1 {
						// The second request on the first connection: gone without an
						// answer, with a reset (linger 0), as a server closing idle does.
						_ = c.(*net.TCPConn).SetLinger(0)
						return
					}
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
				}
			}(conn == 0)
		}
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for i := range 2 {
		hr, err := NewCall(context.Background(), "http://"+ln.Addr().String()+"/api/inngest", "fn", "step", Request{}, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(hr)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
