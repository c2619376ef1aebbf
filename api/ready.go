package api

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// ReadyTimeout bounds each readiness check: a service slower than this is not ready.
const ReadyTimeout = 2 * time.Second

// ready answers GET /ready: 200 when every service answered, 503 naming those that did
// not. /health stays a liveness check that touches nothing.
func (h *handlers) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), ReadyTimeout)
	defer cancel()
	checks := map[string]string{}
	var down []string
	for _, ch := range h.b.Ready(ctx) {
		switch {
		case ch.Err == nil:
			checks[ch.Name] = "ok"
			continue
		case errors.Is(ch.Err, context.DeadlineExceeded):
			checks[ch.Name] = "timeout"
		default:
			checks[ch.Name] = "unreachable"
		}
		down = append(down, ch.Name)
		h.cfg.Logger.Warn("not ready", "service", ch.Name, "error", ch.Err)
	}
	if len(down) > 0 {
		c.JSON(503, gin.H{"status": 503, "message": "not ready: " + strings.Join(down, ", "), "checks": checks})
		return
	}
	c.JSON(200, gin.H{"status": 200, "message": "OK", "checks": checks})
}
