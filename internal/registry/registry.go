// Package registry is the function registry every Tempest process of an environment
// shares: each app publishes its functions' configuration (data, no code) when its worker
// starts, and every process that accepts events routes them from it. The registry lives in
// Redis under the environment's hash tag:
//
//	tempest:{reg:<env>}:apps     hash: app id -> App (JSON)
//	tempest:{reg:<env>}:version  counter, incremented by every publish
//	tempest:{reg:<env>}:changed  pub/sub channel: a publish names its app
//	tempest:{reg:<env>}:paused   hash: function id -> Pause (JSON)
//
// The keys are owned by the apps: they do not expire (a function whose workers are all down
// keeps its registration, so its events are still accepted) and an app's entry changes only
// when the app publishes again (sync semantics: the new set replaces the old) or is removed
// with Remove. Pauses are the operators': an app's publish leaves them alone; a function's
// entry stays after it is resumed (its last pause, for replaying what came meanwhile) and
// goes with Drop.
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tempestrun/tempest/flowcontrol"
)

// App is one app's entry: where its runs go and what its functions are.
type App struct {
	ID        string     `json:"id"`
	TaskQueue string     `json:"task_queue"`
	SyncedAt  time.Time  `json:"synced_at"`
	Functions []Function `json:"functions"`
	// Version is a hash of the functions' configuration.
	Version string `json:"version"`
	// URL and SDK are set for apps synced over HTTP by an Inngest SDK: the serve URL it
	// syncs from and the SDK it reported ("js:v4.24.0").
	URL string `json:"url,omitempty"`
	SDK string `json:"sdk,omitempty"`
}

func keys(env string) (apps, version, channel string) {
	apps, version, channel, _ = flowcontrol.RegistryKeys(env)
	return apps, version, channel
}

func pausedKey(env string) string {
	_, _, _, paused := flowcontrol.RegistryKeys(env)
	return paused
}

// Pause is a function's last pause: paused since PausedAt, until ResumedAt (nil: paused).
type Pause struct {
	PausedAt  time.Time  `json:"paused_at"`
	ResumedAt *time.Time `json:"resumed_at,omitempty"`
}

// Paused reports whether the function is paused now.
func (p Pause) Paused() bool { return p.ResumedAt == nil }

// SetPause records function fn's pause (or its resume) in env and tells every process.
func SetPause(ctx context.Context, rdb redis.UniversalClient, env, fn string, p Pause) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	_, version, channel := keys(env)
	pipe := rdb.TxPipeline()
	pipe.HSet(ctx, pausedKey(env), fn, b)
	pipe.Incr(ctx, version)
	pipe.Publish(ctx, channel, fn)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("registry: pause %s: %w", fn, err)
	}
	return nil
}

// Hash is the version of a configuration: the same configuration, the same hash.
func Hash(v any) string {
	b, _ := json.Marshal(v)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// Publish replaces app's entry in env (in one transaction) and tells every process.
func Publish(ctx context.Context, rdb redis.UniversalClient, env string, app App) error {
	for i := range app.Functions {
		app.Functions[i].Version = Hash(app.Functions[i].withoutVersion())
	}
	app.Version = Hash(app.Functions)
	b, err := json.Marshal(app)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	apps, version, channel := keys(env)
	pipe := rdb.TxPipeline()
	pipe.HSet(ctx, apps, app.ID, b)
	pipe.Incr(ctx, version)
	pipe.Publish(ctx, channel, app.ID)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("registry: publish app %s: %w", app.ID, err)
	}
	return nil
}

// Remove deletes app's entry from env.
func Remove(ctx context.Context, rdb redis.UniversalClient, env, appID string) error {
	apps, version, channel := keys(env)
	pipe := rdb.TxPipeline()
	pipe.HDel(ctx, apps, appID)
	pipe.Incr(ctx, version)
	pipe.Publish(ctx, channel, appID)
	_, err := pipe.Exec(ctx)
	return err
}

// Snapshot is the registry at one version.
type Snapshot struct {
	Version int64
	Apps    []App // by id
	// Pauses are the functions' last pauses, by function id (Pause.Paused: paused now).
	Pauses map[string]Pause
}

// Load reads the whole registry of env.
func Load(ctx context.Context, rdb redis.UniversalClient, env string) (Snapshot, error) {
	apps, version, _ := keys(env)
	pipe := rdb.TxPipeline()
	v := pipe.Get(ctx, version)
	all := pipe.HGetAll(ctx, apps)
	paused := pipe.HGetAll(ctx, pausedKey(env))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Snapshot{}, fmt.Errorf("registry: load: %w", err)
	}
	s := Snapshot{Pauses: map[string]Pause{}}
	for fn, raw := range paused.Val() {
		var p Pause
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			return Snapshot{}, fmt.Errorf("registry: pause of %s: %w", fn, err)
		}
		s.Pauses[fn] = p
	}
	if v.Val() != "" {
		s.Version, _ = strconv.ParseInt(v.Val(), 10, 64)
	}
	for id, raw := range all.Val() {
		var a App
		if err := json.Unmarshal([]byte(raw), &a); err != nil {
			return Snapshot{}, fmt.Errorf("registry: app %s: %w", id, err)
		}
		s.Apps = append(s.Apps, a)
	}
	slices.SortFunc(s.Apps, func(a, b App) int { return strings.Compare(a.ID, b.ID) })
	return s, nil
}

// currentVersion is the registry's version counter.
func currentVersion(ctx context.Context, rdb redis.UniversalClient, env string) (int64, error) {
	_, version, _ := keys(env)
	n, err := rdb.Get(ctx, version).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

// RefreshEvery is how often Watch checks the version even without a change notice (a lost
// pub/sub message costs at most this).
const RefreshEvery = 5 * time.Second

// Watch loads env's registry, hands it to apply, and again after every change until ctx is
// done: at once on a publish's notice, else within RefreshEvery. The first load happens
// before Watch returns; its error is returned. Later errors go to onErr and are retried.
func Watch(ctx context.Context, rdb redis.UniversalClient, env string, apply func(Snapshot), onErr func(error)) error {
	s, err := Load(ctx, rdb, env)
	if err != nil {
		return err
	}
	apply(s)
	_, _, channel := keys(env)
	sub := rdb.Subscribe(ctx, channel)
	go func() {
		defer sub.Close()
		notices := sub.Channel()
		tick := time.NewTicker(RefreshEvery)
		defer tick.Stop()
		seen := s.Version
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-notices:
				if !ok { // the subscription ended with the client
					return
				}
			case <-tick.C:
				if v, err := currentVersion(ctx, rdb, env); err != nil || v == seen {
					if err != nil && ctx.Err() == nil {
						onErr(err)
					}
					continue
				}
			}
			s, err := Load(ctx, rdb, env)
			if err != nil {
				if ctx.Err() == nil {
					onErr(err)
				}
				continue
			}
			seen = s.Version
			apply(s)
		}
	}()
	return nil
}

// Drop deletes an environment's whole registry (every app's entry and the version): for
// tests and for retiring an environment.
func Drop(ctx context.Context, rdb redis.UniversalClient, env string) error {
	apps, version, _ := keys(env)
	return rdb.Del(ctx, apps, version, pausedKey(env)).Err()
}
