package flowcontrol

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// evalMany runs script n times in one pipelined round trip, with the keys and arguments
// call(i) gives. After a Redis restart the script cache is empty: it loads the script and
// runs the whole batch again, so every call must be safe to repeat (the calls that did
// run see their own effects the second time).
func evalMany(ctx context.Context, rdb redis.UniversalClient, script *redis.Script, n int, call func(i int) ([]string, []any)) ([]*redis.Cmd, error) {
	run := func() ([]*redis.Cmd, error) {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.Cmd, n)
		for i := range n {
			keys, args := call(i)
			cmds[i] = script.EvalSha(ctx, pipe, keys, args...)
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if lerr := script.Load(ctx, rdb).Err(); lerr != nil {
			return nil, fmt.Errorf("load script: %w", lerr)
		}
		cmds, err = run()
	}
	return cmds, err
}
