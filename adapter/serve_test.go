package adapter_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/internal/testenv"
)

// serve runs app.ServeListener on a free loopback port until the test ends and returns its
// address.
func serve(t *testing.T, mod func(*adapter.Options)) string {
	t.Helper()
	app := testenv.App(t, mod)
	mustCreate(t, app, "noop", adapter.EventTrigger("test/noop", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeListener: %v", err)
		}
	})
	return ln.Addr().String()
}

// dial opens a raw connection whose reads fail after guard, so that a server that never
// closes it fails the test instead of hanging it.
func dial(t *testing.T, addr string, guard time.Duration) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetReadDeadline(time.Now().Add(guard))
	return conn
}

// closedByServer reads until the server closes conn; a client-side timeout means it did not.
func closedByServer(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the server kept the connection open", what)
	}
}

// A body that stops arriving is cut off at the read timeout, and a keep-alive connection
// left idle is closed at the idle timeout.
func TestServerClosesSlowBodiesAndIdleConnections(t *testing.T) {
	t.Parallel()
	addr := serve(t, func(o *adapter.Options) {
		o.ReadTimeout = 300 * time.Millisecond
		o.IdleTimeout = 300 * time.Millisecond
	})

	slow := dial(t, addr, 10*time.Second)
	fmt.Fprintf(slow, "POST /e/k HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":")
	sbr := bufio.NewReader(slow)
	resp, err := http.ReadResponse(sbr, nil)
	if err != nil {
		t.Fatalf("slow body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 408 {
		t.Fatalf("slow body: HTTP %d, want 408", resp.StatusCode)
	}
	closedByServer(t, slow, "slow body")

	idle := dial(t, addr, 10*time.Second)
	fmt.Fprintf(idle, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("health: HTTP %d close=%v", resp.StatusCode, resp.Close)
	}
	closedByServer(t, idle, "idle keep-alive connection")
}

// A body over the request limit is a 413, whether it says so in Content-Length (answered
// before the body is read) or not (chunked).
func TestRequestBodyLimit(t *testing.T) {
	t.Parallel()
	addr := serve(t, func(o *adapter.Options) { o.MaxRequestSize = 1024 })
	big := `[{"name":"test/noop","data":{"x":"` + strings.Repeat("x", 2000) + `"}}]`

	resp, err := http.Post("http://"+addr+"/e/k", "application/json", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(b), `"status":413`) || !strings.Contains(string(b), "over the max size of 1024 bytes") {
		t.Fatalf("HTTP %d %s", resp.StatusCode, b)
	}

	// Declared too large: the answer comes without the body being sent.
	conn := dial(t, addr, 10*time.Second)
	fmt.Fprintf(conn, "POST /e/k HTTP/1.1\r\nHost: localhost\r\nContent-Length: 104857600\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("declared 100 MB: HTTP %d", resp.StatusCode)
	}

	// Chunked, no length: cut off once 1024 bytes have been read.
	req, _ := http.NewRequest("POST", "http://"+addr+"/e/k", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("chunked: HTTP %d", resp.StatusCode)
	}
}

// While request bodies hold the in-flight budget, another request is told to come back
// (503 with Retry-After) instead of adding to memory; once they finish it is accepted.
func TestBytesInFlightAreCapped(t *testing.T) {
	t.Parallel()
	addr := serve(t, func(o *adapter.Options) { o.MaxRequestSize = 1000; o.MaxBytesInFlight = 1000 })
	body := `{"name":"test/noop","data":{"pad":"` + strings.Repeat("p", 900-36) + `"}}`

	// The server asks for the body (100 Continue) only once the handler holds its bytes.
	holder := dial(t, addr, 10*time.Second)
	fmt.Fprintf(holder, "POST /e/k HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", len(body))
	br := bufio.NewReader(holder)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "100 Continue") {
		t.Fatalf("expected 100 Continue, got %q %v", line, err)
	}
	br.ReadString('\n') // the blank line after the interim response

	post := func() (*http.Response, string) {
		resp, err := http.Post("http://"+addr+"/e/k", "application/json", strings.NewReader(`{"name":"test/noop","data":{"n":"`+strings.Repeat("n", 200)+`"}}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, b := post()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(b, `"status":503`) {
		t.Fatalf("while full: HTTP %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}

	io.WriteString(holder, body)
	held, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	held.Body.Close()
	if held.StatusCode != 200 {
		t.Fatalf("holder: HTTP %d", held.StatusCode)
	}
	if resp, b := post(); resp.StatusCode != 200 {
		t.Fatalf("after release: HTTP %d %s", resp.StatusCode, b)
	}
}
