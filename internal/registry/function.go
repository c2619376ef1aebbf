package registry

// Function is one function's configuration as data, in the shape of the function config
// Inngest's SDKs sync (camelCase keys; durations as Go duration strings, like "1m30s").
// Pointers and empty slices are options left unset.
type Function struct {
	// ID is the fully qualified id, "<app id>-<function id>".
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Triggers []Trigger `json:"triggers"`
	// Retries of each step: attempts = Retries + 1.
	Retries     int           `json:"retries"`
	Concurrency []Concurrency `json:"concurrency,omitempty"`
	Throttle    *Throttle     `json:"throttle,omitempty"`
	RateLimit   *RateLimit    `json:"rateLimit,omitempty"`
	Idempotency *string       `json:"idempotency,omitempty"`
	Debounce    *Debounce     `json:"debounce,omitempty"`
	BatchEvents *BatchEvents  `json:"batchEvents,omitempty"`
	Priority    *Priority     `json:"priority,omitempty"`
	Timeouts    *Timeouts     `json:"timeouts,omitempty"`
	Cancel      []Cancel      `json:"cancel,omitempty"`
	Singleton   *Singleton    `json:"singleton,omitempty"`
	// URL is where an SDK app serves the function (functions synced over HTTP); Tempest
	// calls it to run each step.
	URL string `json:"url,omitempty"`
	// Version is a hash of everything above, set by Publish: processes recompile a
	// function's expressions only when it changes.
	Version string `json:"version,omitempty"`
}

func (f Function) withoutVersion() Function {
	f.Version = ""
	return f
}

// Trigger is {event, expression} or {cron}.
type Trigger struct {
	Event      string  `json:"event,omitempty"`
	Expression *string `json:"expression,omitempty"`
	Cron       string  `json:"cron,omitempty"`
}

type Concurrency struct {
	Limit int     `json:"limit"`
	Key   *string `json:"key,omitempty"`
	Scope string  `json:"scope,omitempty"`
}

type Throttle struct {
	Limit  int     `json:"limit"`
	Period string  `json:"period"`
	Burst  int     `json:"burst,omitempty"`
	Key    *string `json:"key,omitempty"`
}

type RateLimit struct {
	Limit  int     `json:"limit"`
	Period string  `json:"period"`
	Key    *string `json:"key,omitempty"`
}

type Debounce struct {
	Period  string  `json:"period"`
	Key     *string `json:"key,omitempty"`
	Timeout string  `json:"timeout,omitempty"`
}

type BatchEvents struct {
	MaxSize int     `json:"maxSize"`
	Timeout string  `json:"timeout"`
	Key     *string `json:"key,omitempty"`
	If      *string `json:"if,omitempty"`
}

type Priority struct {
	Run *string `json:"run,omitempty"`
}

type Timeouts struct {
	Start  string `json:"start,omitempty"`
	Finish string `json:"finish,omitempty"`
}

type Cancel struct {
	Event   string  `json:"event"`
	If      *string `json:"if,omitempty"`
	Match   string  `json:"match,omitempty"`
	Timeout string  `json:"timeout,omitempty"`
}

type Singleton struct {
	Key  *string `json:"key,omitempty"`
	Mode string  `json:"mode"`
}
