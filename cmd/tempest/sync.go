package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/tempestrun/tempest/adapter"
)

// appSyncer syncs the Inngest SDK apps `tempest dev -u` names, as Inngest's dev server does:
// once at start, then every poll interval, logging only changes (synced, updated, failing).
type appSyncer struct {
	app   *adapter.App
	log   *slog.Logger
	state map[string]string // URL -> last outcome logged
}

func (s *appSyncer) syncAll(ctx context.Context, urls []string) {
	for _, u := range urls {
		res, err := s.app.SyncSDKApp(ctx, u)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if s.state[u] != err.Error() {
				s.log.Warn("SDK app not synced; retrying", "url", u, "err", err)
			}
			s.state[u] = err.Error()
		case res.Modified || s.state[u] != "ok":
			s.log.Info("SDK app synced", "url", u, "app", res.AppID, "functions", res.Functions, "kind", res.Kind)
			s.state[u] = "ok"
		}
	}
}

func (s *appSyncer) poll(ctx context.Context, urls []string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.syncAll(ctx, urls)
		}
	}
}
