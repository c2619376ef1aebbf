package api

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Limits of GET /v1/events.
const (
	DefaultEventsLimit = 20
	MaxEventsLimit     = 100
	// DefaultEventsWindow: without received_after or received_before, Inngest lists the
	// last hour.
	DefaultEventsWindow = time.Hour
)

// listEvents serves GET /v1/events?name=&received_after=&received_before=&cursor=&limit=,
// newest first; cursor is the internal id of the last event of the previous page.
func (h *handlers) listEvents(c *gin.Context) {
	q, err := eventQuery(c, time.Now())
	if err != nil {
		publicErr(c, 400, err.Error())
		return
	}
	evs, err := h.b.Events(c.Request.Context(), q)
	var inErr *InputError
	if errors.As(err, &inErr) {
		publicErr(c, 400, inErr.Msg)
		return
	}
	if h.fail(c, err, "Event not found") {
		return
	}
	if evs == nil {
		evs = []Event{}
	}
	ok200(c, evs)
}

func eventQuery(c *gin.Context, now time.Time) (EventQuery, error) {
	q := EventQuery{Name: c.Query("name"), Cursor: strings.ToUpper(c.Query("cursor")), Limit: DefaultEventsLimit}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return q, fmt.Errorf("limit %q: use a whole number from 1 to %d", v, MaxEventsLimit)
		}
		q.Limit = min(n, MaxEventsLimit)
	}
	if q.Cursor != "" && !ulidRE.MatchString(q.Cursor) {
		return q, fmt.Errorf("cursor %q is not an event's internal id (a ULID)", c.Query("cursor"))
	}
	for _, b := range []struct {
		param string
		t     *time.Time
	}{{"received_after", &q.ReceivedAfter}, {"received_before", &q.ReceivedBefore}} {
		if v := c.Query(b.param); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return q, fmt.Errorf("%s %q: use an RFC 3339 time, like 2026-01-02T15:04:05Z", b.param, v)
			}
			*b.t = t
		}
	}
	if q.ReceivedAfter.IsZero() && q.ReceivedBefore.IsZero() {
		q.ReceivedAfter = now.Add(-DefaultEventsWindow)
	}
	return q, nil
}
