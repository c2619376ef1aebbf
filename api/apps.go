package api

import (
	"encoding/json"

	"github.com/gin-gonic/gin"
)

// functionV1 is Inngest's v1 function shape (its cqrs.Function without the internal UUIDs
// and creation time, which the registry does not have): id is the fully qualified id.
type functionV1 struct {
	ID     string          `json:"id"`
	Name   string          `json:"name"`
	AppID  string          `json:"app_id"`
	Config json.RawMessage `json:"config"`
}

// getAppFunctionsV1 answers GET /v1/apps/{app}/functions. Inngest writes this one as a bare
// array, without the {data, metadata} envelope of the other v1 answers, so clients written
// against it decode it here too.
func (h *handlers) getAppFunctionsV1(c *gin.Context) {
	app := c.Param("app")
	fns, err := h.b.AppFunctions(c.Request.Context(), app)
	if h.fail(c, err, "App not found: "+app) {
		return
	}
	out := make([]functionV1, len(fns))
	for i, f := range fns {
		out[i] = functionV1{ID: f.ID, Name: f.Name, AppID: f.AppID, Config: f.Config}
	}
	c.JSON(200, out)
}

func (h *handlers) listApps(c *gin.Context) {
	apps, err := h.b.Apps(c.Request.Context())
	if h.fail(c, err, "") {
		return
	}
	ok200(c, apps)
}

func (h *handlers) getApp(c *gin.Context) {
	app := c.Param("app")
	out, err := h.b.DescribeApp(c.Request.Context(), app)
	if h.fail(c, err, "App not found: "+app) {
		return
	}
	ok200(c, out)
}

func (h *handlers) listAppFunctions(c *gin.Context) {
	app := c.Param("app")
	fns, err := h.b.AppFunctions(c.Request.Context(), app)
	if h.fail(c, err, "App not found: "+app) {
		return
	}
	ok200(c, fns)
}

func (h *handlers) getAppFunction(c *gin.Context) {
	out, err := h.b.DescribeFunction(c.Request.Context(), c.Param("app"), c.Param("fn"))
	if h.failFunction(c, err) {
		return
	}
	ok200(c, out)
}

// removeApp answers DELETE /v2/apps/{app}: 200 with an empty body once the registry no
// longer holds the app. An app that runs publishes itself again when its worker restarts.
func (h *handlers) removeApp(c *gin.Context) {
	app := c.Param("app")
	if h.fail(c, h.b.RemoveApp(c.Request.Context(), app), "App not found: "+app) {
		return
	}
	c.Status(200)
}
