package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// FetchRequest is a durable HTTP request (step.Fetch).
type FetchRequest struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"` // default GET
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
}

// FetchResponse is what came back.
type FetchResponse struct {
	StatusCode int               `json:"status_code"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
	URL        string            `json:"url"`
}

// ErrNotRetriable marks a request that will fail the same way every time (bad URL).
var ErrNotRetriable = errors.New("not retriable")

// RetryAfter is a retriable failure that asks for a delay (a Retry-After header).
type RetryAfter struct {
	Delay time.Duration
	Err   error
}

func (e *RetryAfter) Error() string { return e.Err.Error() }
func (e *RetryAfter) Unwrap() error { return e.Err }

// Fetch performs req. Transport errors, 5xx and 429 answers are errors, so the step
// retries them (429/503 with a Retry-After header wait that long); other answers, 4xx
// included, are returned for the caller to read.
func Fetch(ctx context.Context, c *http.Client, req FetchRequest) (FetchResponse, error) {
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return FetchResponse{}, fmt.Errorf("fetch: %q is not an http(s) URL: %w", req.URL, ErrNotRetriable)
	}
	method := strings.ToUpper(req.Method)
	if method == "" {
		method = http.MethodGet
	}
	hreq, err := http.NewRequestWithContext(ctx, method, req.URL, strings.NewReader(req.Body))
	if err != nil {
		return FetchResponse{}, fmt.Errorf("fetch: %v: %w", err, ErrNotRetriable)
	}
	for k, v := range req.Headers {
		hreq.Header.Set(k, v)
	}
	resp, err := c.Do(hreq)
	if err != nil {
		return FetchResponse{}, fmt.Errorf("fetch %s %s: %w", method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return FetchResponse{}, fmt.Errorf("fetch %s %s: read body: %w", method, req.URL, err)
	}
	out := FetchResponse{StatusCode: resp.StatusCode, Headers: map[string]string{}, Body: string(body), URL: req.URL}
	for k := range resp.Header {
		out.Headers[strings.ToLower(k)] = resp.Header.Get(k)
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		err := fmt.Errorf("fetch %s %s: HTTP %d: %.200s", method, req.URL, resp.StatusCode, body)
		if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && secs >= 0 {
			return out, &RetryAfter{Delay: time.Duration(secs) * time.Second, Err: err}
		}
		return out, err
	}
	return out, nil
}
