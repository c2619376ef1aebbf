package sdkhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tempestrun/tempest/internal/registry"
)

// Register is what an app sends to sync: the body of POST /fn/register (out of band) or
// of its answer to an in-band PUT. Unknown fields are ignored; keys match case-insensitively
// (the Go SDK spells some in Go style).
type Register struct {
	URL        string     `json:"url"`
	AppName    string     `json:"appName"` // out of band
	AppID      string     `json:"app_id"`  // in band
	Framework  string     `json:"framework"`
	SDK        string     `json:"sdk"`
	DeployType string     `json:"deployType"`
	Functions  []Function `json:"functions"`
}

// App is the app id, whichever flow sent it.
func (r Register) App() string {
	if r.AppName != "" {
		return r.AppName
	}
	return r.AppID
}

// Function is one function as an SDK syncs it.
type Function struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Triggers    []Trigger       `json:"triggers"`
	Steps       map[string]Step `json:"steps"`
	Retries     *Retries        `json:"retries"` // Go SDK: per function
	Concurrency json.RawMessage `json:"concurrency"`
	Throttle    *struct {
		Limit  int     `json:"limit"`
		Period string  `json:"period"`
		Burst  int     `json:"burst"`
		Key    *string `json:"key"`
	} `json:"throttle"`
	RateLimit *struct {
		Limit  int     `json:"limit"`
		Period string  `json:"period"`
		Key    *string `json:"key"`
	} `json:"rateLimit"`
	Debounce *struct {
		Period  string  `json:"period"`
		Key     *string `json:"key"`
		Timeout string  `json:"timeout"`
	} `json:"debounce"`
	BatchEvents *struct {
		MaxSize int     `json:"maxSize"`
		Timeout string  `json:"timeout"`
		Key     *string `json:"key"`
		If      *string `json:"if"`
	} `json:"batchEvents"`
	Idempotency *string `json:"idempotency"`
	Priority    *struct {
		Run *string `json:"run"`
	} `json:"priority"`
	Timeouts *struct {
		Start  string `json:"start"`
		Finish string `json:"finish"`
	} `json:"timeouts"`
	Singleton *struct {
		Key  *string `json:"key"`
		Mode string  `json:"mode"`
	} `json:"singleton"`
	Cancel []struct {
		Event   string  `json:"event"`
		If      *string `json:"if"`
		Timeout string  `json:"timeout"`
	} `json:"cancel"`
}

// Trigger is {event, expression} or {cron, jitter}.
type Trigger struct {
	Event      string  `json:"event"`
	Expression *string `json:"expression"`
	Cron       string  `json:"cron"`
}

// Step is the one entry of a function's steps map: where to call it.
type Step struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Runtime struct { // type "http" (or "ws" for Connect, not supported)
		Type string `json:"type"`
		URL  string `json:"url"`
	} `json:"runtime"`
	Retries *Retries `json:"retries"`
}

// Retries.Attempts counts retries, despite its name (attempts = Attempts + 1).
type Retries struct {
	Attempts *int `json:"attempts"`
}

// MaxRegisterSize bounds a sync's body.
const MaxRegisterSize = 4 << 20

// DefaultRetries is the number of retries when a function sets none, as Inngest's.
const DefaultRetries = 4

// ErrInvalid is a sync that can never succeed as sent; its message says what to fix.
var ErrInvalid = errors.New("invalid sync")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// ParseRegister decodes and checks a sync's body.
func ParseRegister(body []byte) (Register, error) {
	var r Register
	if err := json.Unmarshal(body, &r); err != nil {
		return r, invalid("the body is not a sync request: %v", err)
	}
	if r.App() == "" {
		return r, invalid("appName is empty: give the Inngest client an id")
	}
	if _, err := CheckURL(r.URL); err != nil {
		return r, err
	}
	return r, nil
}

// CheckURL checks an app's serve URL.
func CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, invalid("url %q is not an http(s) URL of the app's serve endpoint", raw)
	}
	return u, nil
}

// blockedJS are the JS SDK versions Inngest's servers refuse (CVE-2026-42047).
var jsVersion = regexp.MustCompile(`^(?:inngest-)?js:v?(\d+)\.(\d+)\.(\d+)`)

// CheckSDK refuses SDK versions with a known vulnerability: JS 3.22.0 to 3.53.1.
func CheckSDK(sdk string) error {
	m := jsVersion.FindStringSubmatch(sdk)
	if m == nil {
		return nil
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	patch, _ := strconv.Atoi(m[3])
	v := major*1_000_000 + minor*1_000 + patch
	if v >= 3_022_000 && v <= 3_053_001 {
		return invalid("SDK %s is refused (CVE-2026-42047): upgrade the inngest package to 3.54 or newer", sdk)
	}
	return nil
}

// Config converts an SDK's function into the registry's shape (durations as Go durations,
// concurrency as a list, retries from its step) with the URL Tempest calls it at. The
// result is validated where every function is: the adapter compiles it.
func (f Function) Config() (registry.Function, error) {
	c := registry.Function{ID: f.ID, Name: f.Name, Retries: DefaultRetries, Idempotency: f.Idempotency}
	if f.ID == "" {
		return c, invalid("a function has no id")
	}
	var errs []string
	dur := func(field, s string) string {
		if s == "" {
			return ""
		}
		d, err := ParseDuration(s)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", field, err))
			return ""
		}
		return d.String()
	}
	step, ok := f.Steps["step"]
	if !ok {
		for _, s := range f.Steps {
			step = s
			break
		}
	}
	switch {
	case step.Runtime.Type == "ws":
		errs = append(errs, "Connect (runtime type ws) is not supported: serve the function over HTTP")
	case step.Runtime.URL == "":
		errs = append(errs, "its steps give no runtime URL to call")
	default:
		if _, err := CheckURL(step.Runtime.URL); err != nil {
			errs = append(errs, err.Error())
		}
		c.URL = step.Runtime.URL
	}
	retries := step.Retries
	if retries == nil {
		retries = f.Retries
	}
	if retries != nil && retries.Attempts != nil {
		c.Retries = *retries.Attempts
	}
	for _, t := range f.Triggers {
		c.Triggers = append(c.Triggers, registry.Trigger{Event: t.Event, Expression: t.Expression, Cron: t.Cron})
	}
	cc, err := concurrency(f.Concurrency)
	if err != nil {
		errs = append(errs, err.Error())
	}
	c.Concurrency = cc
	if t := f.Throttle; t != nil {
		c.Throttle = &registry.Throttle{Limit: t.Limit, Period: dur("throttle.period", t.Period), Burst: t.Burst, Key: t.Key}
	}
	if r := f.RateLimit; r != nil {
		c.RateLimit = &registry.RateLimit{Limit: r.Limit, Period: dur("rateLimit.period", r.Period), Key: r.Key}
	}
	if d := f.Debounce; d != nil {
		c.Debounce = &registry.Debounce{Period: dur("debounce.period", d.Period), Key: d.Key, Timeout: dur("debounce.timeout", d.Timeout)}
	}
	if b := f.BatchEvents; b != nil {
		c.BatchEvents = &registry.BatchEvents{MaxSize: b.MaxSize, Timeout: dur("batchEvents.timeout", b.Timeout), Key: b.Key, If: b.If}
	}
	if p := f.Priority; p != nil {
		c.Priority = &registry.Priority{Run: p.Run}
	}
	if t := f.Timeouts; t != nil {
		c.Timeouts = &registry.Timeouts{Start: dur("timeouts.start", t.Start), Finish: dur("timeouts.finish", t.Finish)}
	}
	if s := f.Singleton; s != nil {
		c.Singleton = &registry.Singleton{Key: s.Key, Mode: strings.ToLower(s.Mode)}
	}
	for i, r := range f.Cancel {
		c.Cancel = append(c.Cancel, registry.Cancel{Event: r.Event, If: r.If, Timeout: dur(fmt.Sprintf("cancel[%d].timeout", i), r.Timeout)})
	}
	if len(errs) > 0 {
		return c, invalid("function %s: %s", f.ID, strings.Join(errs, "; "))
	}
	return c, nil
}

// concurrency accepts a number, an option, a list of options, or the Go SDK's
// {"fn": [...], "step": [...]}.
func concurrency(raw json.RawMessage) ([]registry.Concurrency, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	type option struct {
		Limit int     `json:"limit"`
		Key   *string `json:"key"`
		Scope string  `json:"scope"`
	}
	var opts []option
	switch raw[0] {
	case '[':
		if err := json.Unmarshal(raw, &opts); err != nil {
			return nil, fmt.Errorf("concurrency: %v", err)
		}
	case '{':
		var shapes struct {
			option
			Fn []option `json:"fn"`
		}
		if err := json.Unmarshal(raw, &shapes); err != nil {
			return nil, fmt.Errorf("concurrency: %v", err)
		}
		opts = shapes.Fn
		if opts == nil {
			opts = []option{shapes.option}
		}
	default:
		var n int
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, fmt.Errorf("concurrency: want a number, an object or a list: %v", err)
		}
		opts = []option{{Limit: n}}
	}
	var out []registry.Concurrency
	for _, o := range opts {
		scope := strings.ToLower(o.Scope)
		if scope == "account" { // one environment is the whole account here
			scope = "env"
		}
		out = append(out, registry.Concurrency{Limit: o.Limit, Key: o.Key, Scope: scope})
	}
	return out, nil
}

var durationPart = regexp.MustCompile(`^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w)`)

// ParseDuration reads the SDKs' time strings ("30s", "1h30m", "2d", "1w") and Go's.
func ParseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	units := map[string]time.Duration{"ns": time.Nanosecond, "us": time.Microsecond, "µs": time.Microsecond,
		"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}
	rest := strings.TrimSpace(s)
	if rest == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var total time.Duration
	for rest != "" {
		m := durationPart.FindStringSubmatch(rest)
		if m == nil {
			return 0, fmt.Errorf("%q is not a duration like 30s, 1h30m or 2d", s)
		}
		n, _ := strconv.ParseFloat(m[1], 64)
		total += time.Duration(n * float64(units[m[2]]))
		rest = rest[len(m[0]):]
	}
	return total, nil
}
