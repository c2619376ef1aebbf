package flowcontrol

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// eventIDKey maps a client's event id to the internal id of the first event that carried
// it. Each id has its own slot: the events of one request spread across a cluster.
func eventIDKey(clientID string) string { return "tempest:{eid:" + hashed(clientID) + "}" }

// ClaimEventIDs makes the client's event id the identity of an event for DedupWindow: for
// each clientIDs[i] it stores candidates[i] unless an earlier event holds the id, and
// returns the holder's internal id. A send of the same id (a retry without a seed, a retry
// with a new seed, or a deliberate duplicate) thus maps to the same internal id, hence the
// same run ids: whatever the first send did not finish, this one does, and nothing runs
// twice. One pipelined round trip.
func ClaimEventIDs(ctx context.Context, rdb redis.UniversalClient, clientIDs, candidates []string) ([]string, error) {
	if len(clientIDs) == 0 {
		return nil, nil
	}
	pipe := rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(clientIDs))
	for i, id := range clientIDs {
		pipe.SetNX(ctx, eventIDKey(id), candidates[i], DedupWindow)
		gets[i] = pipe.Get(ctx, eventIDKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("claim event ids: %w", err)
	}
	out := make([]string, len(clientIDs))
	for i, g := range gets {
		// Nil only if the holder expired between the two commands: the id is free again.
		if out[i] = g.Val(); out[i] == "" {
			out[i] = candidates[i]
		}
	}
	return out, nil
}
