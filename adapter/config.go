package adapter

import (
	"fmt"
	"strings"
	"time"

	"github.com/tempestrun/tempest/internal/registry"
)

// config is f's configuration as the registry holds it: data any process can route from.
func (f *function) config() registry.Function {
	o := f.opts
	c := registry.Function{ID: f.slug, Name: f.Name(), Retries: f.retries, Idempotency: o.Idempotency, URL: f.url}
	for _, t := range f.trigs {
		c.Triggers = append(c.Triggers, registry.Trigger{Event: t.Event, Expression: t.Expression, Cron: t.Cron})
	}
	for _, cc := range o.Concurrency {
		c.Concurrency = append(c.Concurrency, registry.Concurrency{Limit: cc.Limit, Key: cc.Key, Scope: cc.Scope})
	}
	if t := o.Throttle; t != nil {
		c.Throttle = &registry.Throttle{Limit: t.Limit, Period: t.Period.String(), Burst: t.Burst, Key: t.Key}
	}
	if r := o.RateLimit; r != nil {
		c.RateLimit = &registry.RateLimit{Limit: r.Limit, Period: r.Period.String(), Key: r.Key}
	}
	if d := o.Debounce; d != nil {
		c.Debounce = &registry.Debounce{Period: d.Period.String(), Key: d.Key}
		if d.Timeout != nil {
			c.Debounce.Timeout = d.Timeout.String()
		}
	}
	if b := o.BatchEvents; b != nil {
		c.BatchEvents = &registry.BatchEvents{MaxSize: b.MaxSize, Timeout: b.Timeout.String(), Key: b.Key, If: b.If}
	}
	if p := o.Priority; p != nil {
		c.Priority = &registry.Priority{Run: p.Run}
	}
	if t := o.Timeouts; t != nil {
		c.Timeouts = &registry.Timeouts{}
		if t.Start != nil {
			c.Timeouts.Start = t.Start.String()
		}
		if t.Finish != nil {
			c.Timeouts.Finish = t.Finish.String()
		}
	}
	for _, r := range o.Cancel {
		rc := registry.Cancel{Event: r.Event, If: r.If, Match: r.Match}
		if r.Timeout != 0 {
			rc.Timeout = r.Timeout.String()
		}
		c.Cancel = append(c.Cancel, rc)
	}
	if s := o.Singleton; s != nil {
		c.Singleton = &registry.Singleton{Key: s.Key, Mode: s.Mode}
	}
	return c
}

// functionFromConfig compiles a registered function of another app (or another version of
// this one) for routing: the same validation and compilation as CreateFunction, without a
// handler (its runs execute on its app's workers).
func functionFromConfig(appID, taskQueue string, c registry.Function) (*function, error) {
	id, ok := strings.CutPrefix(c.ID, appID+"-")
	if !ok {
		return nil, fmt.Errorf("function %q is not of app %q", c.ID, appID)
	}
	o := FunctionOpts{ID: id, Name: c.Name, Retries: Ptr(c.Retries), Idempotency: c.Idempotency}
	var errs []string
	dur := func(field, s string) time.Duration {
		d, err := time.ParseDuration(s)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s %q is not a duration", field, s))
		}
		return d
	}
	optDur := func(field, s string) *time.Duration {
		if s == "" {
			return nil
		}
		return Ptr(dur(field, s))
	}
	for _, cc := range c.Concurrency {
		o.Concurrency = append(o.Concurrency, Concurrency{Limit: cc.Limit, Key: cc.Key, Scope: cc.Scope})
	}
	if t := c.Throttle; t != nil {
		o.Throttle = &Throttle{Limit: t.Limit, Period: dur("throttle.period", t.Period), Burst: t.Burst, Key: t.Key}
	}
	if r := c.RateLimit; r != nil {
		o.RateLimit = &RateLimit{Limit: r.Limit, Period: dur("rateLimit.period", r.Period), Key: r.Key}
	}
	if d := c.Debounce; d != nil {
		o.Debounce = &Debounce{Period: dur("debounce.period", d.Period), Key: d.Key, Timeout: optDur("debounce.timeout", d.Timeout)}
	}
	if b := c.BatchEvents; b != nil {
		o.BatchEvents = &BatchEvents{MaxSize: b.MaxSize, Timeout: dur("batchEvents.timeout", b.Timeout), Key: b.Key, If: b.If}
	}
	if p := c.Priority; p != nil {
		o.Priority = &Priority{Run: p.Run}
	}
	if t := c.Timeouts; t != nil {
		o.Timeouts = &Timeouts{Start: optDur("timeouts.start", t.Start), Finish: optDur("timeouts.finish", t.Finish)}
	}
	for i, r := range c.Cancel {
		rc := Cancel{Event: r.Event, If: r.If, Match: r.Match}
		if r.Timeout != "" {
			rc.Timeout = dur(fmt.Sprintf("cancel[%d].timeout", i), r.Timeout)
		}
		o.Cancel = append(o.Cancel, rc)
	}
	if s := c.Singleton; s != nil {
		o.Singleton = &Singleton{Key: s.Key, Mode: s.Mode}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("function %q: %s", c.ID, strings.Join(errs, "; "))
	}
	var trigs MultipleTriggers
	for _, t := range c.Triggers {
		trigs = append(trigs, Trigger{Event: t.Event, Expression: t.Expression, Cron: t.Cron})
	}
	f, err := compileFunction(appID, o, trigs, c.URL != "")
	if err != nil {
		return nil, err
	}
	f.taskQueue, f.url = taskQueue, c.URL
	return f, nil
}
