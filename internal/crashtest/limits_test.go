package crashtest

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/internal/testenv"
)

// limits are functions with flow control, by id, for the multi-process tests: they hold
// across gateway replicas (rate limit, decided where events are accepted) and across worker
// processes of one app (concurrency, decided where steps run).
var limits = map[string]func(*adapter.App) error{
	// limited: 20 per hour, so from idle floor(20/10)+1 = 3 runs, whatever the senders.
	"limited": func(app *adapter.App) error {
		_, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "limited", RateLimit: &adapter.RateLimit{Limit: 20, Period: time.Hour}},
			adapter.EventTrigger("crash/limited", nil),
			func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
				return step.Run(ctx, "work", func(context.Context) (bool, error) { return true, nil })
			})
		return err
	},
	// exclusive: one step at a time across every worker of the app; each step records
	// how many run at once in Redis (spansKey).
	"exclusive": func(app *adapter.App) error { return spanning(app, "exclusive", 1) },
	// unlimited: the same without a limit, so the test shows it can see an overlap.
	"unlimited": func(app *adapter.App) error { return spanning(app, "unlimited", 0) },
	// throttled: 2 per second, no burst; its step records when it began (beginsKey).
	"throttled": func(app *adapter.App) error {
		opts, err := redis.ParseURL(testenv.RedisURL())
		if err != nil {
			return err
		}
		rdb := redis.NewClient(opts)
		key := beginsKey(app.Options().Environment)
		_, err = adapter.CreateFunction(app, adapter.FunctionOpts{ID: "throttled", Throttle: &adapter.Throttle{Limit: 2, Period: time.Second}},
			adapter.EventTrigger("crash/throttled", nil),
			func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
				return step.Run(ctx, "work", func(ctx context.Context) (bool, error) {
					return true, rdb.RPush(ctx, key, time.Now().UnixMilli()).Err()
				})
			})
		if err == nil {
			err = rdb.Expire(context.Background(), key, 10*time.Minute).Err()
		}
		return err
	},
}

func beginsKey(env string) string { return "crashtest:" + env + ":throttled:begins" }

// spanning defines a function whose one step records how many of its steps run at once.
func spanning(app *adapter.App, id string, limit int) error {
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opts)
	key := spansKey(app.Options().Environment, id)
	o := adapter.FunctionOpts{ID: id}
	if limit > 0 {
		o.Concurrency = []adapter.Concurrency{{Limit: limit}}
	}
	_, err = adapter.CreateFunction(app, o, adapter.EventTrigger("crash/spans", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "work", func(ctx context.Context) (bool, error) {
				if err := overlap.Run(ctx, rdb, []string{key, key + ":max"}).Err(); err != nil {
					return false, err
				}
				if limit == 0 {
					// Unlimited: hold the step until another one runs alongside (or 2 s
					// pass), so the test sees the overlap however the starts are spread.
					for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
						if n, _ := rdb.Get(ctx, key).Int(); n >= 2 {
							break
						}
					}
				}
				time.Sleep(30 * time.Millisecond)
				return true, rdb.Decr(ctx, key).Err()
			})
		})
	return err
}

func spansKey(env, fn string) string { return "crashtest:" + env + ":" + fn + ":running" }

// overlap counts a step in and keeps the most seen at once.
var overlap = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 600000)
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n, 'PX', 600000) end
return n`)
