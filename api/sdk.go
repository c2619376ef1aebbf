package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tempestrun/tempest/internal/sdkhttp"
)

// SyncResult is what syncing an SDK app did.
type SyncResult struct {
	AppID     string `json:"app_id"`
	Modified  bool   `json:"modified"`
	Functions int    `json:"functions"`
	// Kind is how the app answered a sync Tempest started: "in_band" or "out_of_band".
	Kind string `json:"sync_kind,omitempty"`
}

// ErrAppUnreachable is an SDK app that did not answer a sync (502).
var ErrAppUnreachable = errors.New("app unreachable")

// ErrStaleCheckpoint is a checkpoint from a call attempt no longer in flight (409: the SDK
// then abandons that attempt instead of forking the run).
var ErrStaleCheckpoint = errors.New("stale checkpoint: the call attempt is no longer in flight")

// ErrTooLarge is a body over a limit (413).
var ErrTooLarge = errors.New("too large")

// maxCheckpointBody bounds one checkpoint request (one step's output is at most 4 MiB).
const maxCheckpointBody = 8 << 20

// checkpoint is POST /v1/checkpoint/{run}/async: steps an app finished during a call.
func (h *handlers) checkpoint(c *gin.Context) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxCheckpointBody))
	if err != nil {
		publicErr(c, 413, "the checkpoint is over 8 MiB")
		return
	}
	err = h.b.Checkpoint(c.Request.Context(), c.Param("id"), body)
	switch {
	case errors.Is(err, ErrStaleCheckpoint):
		publicErr(c, 409, err.Error())
	case errors.Is(err, ErrTooLarge):
		publicErr(c, 413, err.Error())
	case h.fail(c, err, "Run not found"):
	default:
		c.JSON(200, gin.H{"status": 200})
	}
}

// register is POST /fn/register: an SDK app's out-of-band sync. The SDK reports the body's
// status and error to whoever asked it to sync, so both are in the body.
func (h *handlers) register(c *gin.Context) {
	if want := c.GetHeader("X-Inngest-Expected-Server-Kind"); want != "" && want != h.kind {
		publicErr(c, 400, "the app expects an Inngest "+want+" server, this Tempest server is "+h.kind+
			": set INNGEST_DEV to match (dev: INNGEST_DEV=<tempest URL>; cloud: INNGEST_BASE_URL and INNGEST_SIGNING_KEY, no INNGEST_DEV)")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, sdkhttp.MaxRegisterSize))
	if err != nil {
		publicErr(c, 413, "the sync is over 4 MiB")
		return
	}
	res, err := h.b.RegisterSDKApp(c.Request.Context(), body)
	if h.syncFailed(c, err) {
		return
	}
	c.JSON(200, gin.H{"ok": true, "status": 200, "modified": res.Modified, "app_id": res.AppID})
}

// syncApp is POST /v2/apps {"url": ...} and POST /v2/apps/{app}/sync: Tempest asks the app
// to sync (a PUT to its serve URL, signed when the server has a signing key).
func (h *handlers) syncApp(c *gin.Context) {
	var req struct {
		URL string `json:"url"`
	}
	if app := c.Param("app"); app != "" {
		url, err := h.b.SDKAppURL(c.Request.Context(), app)
		if h.fail(c, err, "App not found: "+app) {
			return
		}
		req.URL = url
	} else if err := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, 64<<10)).Decode(&req); err != nil || req.URL == "" {
		publicErr(c, 400, `send {"url": "<the app's serve URL, like http://127.0.0.1:3000/api/inngest>"}`)
		return
	}
	res, err := h.b.SyncSDKApp(c.Request.Context(), req.URL)
	if h.syncFailed(c, err) {
		return
	}
	ok200(c, res)
}

// syncFailed answers a failed sync in the REST error shape, whose status and error the SDK
// reports to whoever asked it to sync.
func (h *handlers) syncFailed(c *gin.Context, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, sdkhttp.ErrInvalid):
		publicErr(c, 400, err.Error())
	case errors.Is(err, ErrAppUnreachable):
		publicErr(c, 502, err.Error())
	default:
		return h.fail(c, err, "App not found")
	}
	return true
}

// callState is GET /v0/runs/{run}/actions and /batch: what a call sent with use_api left out
// (the memoized steps, the events), read by the app.
func (h *handlers) callState(part string) gin.HandlerFunc {
	return func(c *gin.Context) {
		raw, err := h.b.CallState(c.Request.Context(), c.Param("id"), part)
		if h.fail(c, err, "Run not found, or it has no call that needed the API") {
			return
		}
		c.Data(200, "application/json", raw)
	}
}
