package metrics

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisHook times Redis commands (by command name) and pipelines (as "pipeline"). Add it
// to a client of one's own only: hooks on a shared client add up.
func (m *Metrics) RedisHook() redis.Hook { return redisHook{m} }

type redisHook struct{ m *Metrics }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		t := time.Now()
		err := next(ctx, cmd)
		h.m.RedisDuration.WithLabelValues(cmd.Name()).Observe(time.Since(t).Seconds())
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		t := time.Now()
		err := next(ctx, cmds)
		h.m.RedisDuration.WithLabelValues("pipeline").Observe(time.Since(t).Seconds())
		return err
	}
}
