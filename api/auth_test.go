package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// Outside dev every route under /v1 and /v2 (every surface that reads or changes runs,
// events, apps, functions and replays) and /metrics answers 401 without the signing key, before it
// reaches the backend (nil here: reaching it would be a 500).
func TestEveryRESTRouteRequiresTheSigningKey(t *testing.T) {
	eng, ok := New(nil, Config{SigningKey: "sk", EventKeys: []string{"ek"}, Metrics: http.NotFoundHandler()}).(*gin.Engine)
	if !ok {
		t.Fatal("New no longer returns the gin engine: list its routes another way")
	}
	n := 0
	for _, r := range eng.Routes() {
		if !strings.HasPrefix(r.Path, "/v1/") && !strings.HasPrefix(r.Path, "/v2/") && r.Path != "/metrics" {
			continue
		}
		n++
		path := strings.NewReplacer(":id", "01M8C5A8AE54CATSG6QDR7G7T3", ":app", "a", ":fn", "f").Replace(r.Path)
		for _, auth := range []string{"", "Bearer wrong"} {
			req := httptest.NewRequest(r.Method, path, strings.NewReader("{}"))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			w := httptest.NewRecorder()
			eng.ServeHTTP(w, req)
			if w.Code != http.StatusUnauthorized {
				t.Errorf("%s %s with %q: HTTP %d %s, want 401", r.Method, path, auth, w.Code, w.Body)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d REST routes found", n)
	}
}

// Outside dev every request is logged, one line, without its keys.
func TestRequestLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	h := New(nil, Config{SigningKey: "sk", EventKeys: []string{"ek"}, Logger: log})
	req := httptest.NewRequest("GET", "/v1/runs/01M8C5A8AE54CATSG6QDR7G7T3", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	h.ServeHTTP(httptest.NewRecorder(), req)
	var line struct {
		Msg, Method, Path string
		Status            int
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line.Msg != "request" || line.Method != "GET" ||
		line.Path != "/v1/runs/01M8C5A8AE54CATSG6QDR7G7T3" || line.Status != 401 || strings.Contains(buf.String(), "wrong") {
		t.Fatalf("log line %q (%v)", buf.String(), err)
	}
}
