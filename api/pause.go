package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// ResumeRequest is the optional body of POST /v2/apps/{app}/functions/{fn}/resume.
type ResumeRequest struct {
	// ReplayPausedEvents starts the runs of the events the function received while paused.
	ReplayPausedEvents bool `json:"replay_paused_events"`
}

// Resumed is the answer to a resume: the function and, when asked, the replayed events.
type Resumed struct {
	Function FunctionDetail `json:"function"`
	Replayed *PausedReplay  `json:"replayed,omitempty"`
}

// PausedReplay is what replaying a pause's events did: of the events received in
// [From, Until) that trigger the function, how many now have its run.
type PausedReplay struct {
	From   time.Time `json:"from"`
	Until  time.Time `json:"until"`
	Events int       `json:"events"`
	Runs   int       `json:"runs"`
}

func (h *handlers) pauseFunction(c *gin.Context) {
	out, err := h.b.PauseFunction(c.Request.Context(), c.Param("app"), c.Param("fn"))
	if h.failFunction(c, err) {
		return
	}
	ok200(c, out)
}

func (h *handlers) resumeFunction(c *gin.Context) {
	var req ResumeRequest
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 1<<16))
	if err == nil && len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(&req)
	}
	if err != nil {
		publicErr(c, 400, "Invalid request body: "+err.Error()+` (send {} or {"replay_paused_events": true})`)
		return
	}
	out, err := h.b.ResumeFunction(c.Request.Context(), c.Param("app"), c.Param("fn"), req.ReplayPausedEvents)
	if h.failFunction(c, err) {
		return
	}
	ok200(c, out)
}

// failFunction answers a function endpoint's error (404 names the app or the function).
func (h *handlers) failFunction(c *gin.Context, err error) bool {
	app, fn := c.Param("app"), c.Param("fn")
	msg := "Function not found: " + fn + " in app " + app
	if errors.Is(err, ErrAppNotFound) {
		msg = "App not found: " + app
	}
	return h.fail(c, err, msg)
}
