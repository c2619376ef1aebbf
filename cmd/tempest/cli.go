package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tempestrun/tempest/api"
)

// Exit codes of the client commands (send, runs, replay), for scripts.
const (
	exitOK       = 0
	exitFailed   = 1 // the server or the network failed (5xx, 401, unreachable): retry or fix the setup
	exitUsage    = 2 // bad flags, or a request the server rejected as invalid (400)
	exitNotFound = 3 // the run, event, function or replay does not exist (404)
)

// cliError carries a client command's exit code.
type cliError struct {
	code int
	msg  string
}

func (e *cliError) Error() string { return e.msg }

// exitCode is the process exit code for a command's error.
func exitCode(err error) int {
	var ce *cliError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	default:
		return exitFailed
	}
}

func usageErr(format string, args ...any) error {
	return &cliError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// restClient is a Tempest server's HTTP API, as the client commands call it.
type restClient struct {
	url, signingKey, eventKey string
	http                      *http.Client
}

// clientFlags are the flags every client command takes.
func clientFlags(fs *flag.FlagSet) (*restClient, *bool) {
	c := &restClient{http: &http.Client{Timeout: time.Minute}}
	fs.StringVar(&c.url, "url", envOr("TEMPEST_URL", "http://127.0.0.1:8288"), "the Tempest server ($TEMPEST_URL)")
	fs.StringVar(&c.signingKey, "signing-key", os.Getenv("INNGEST_SIGNING_KEY"), "signing key for the REST API ($INNGEST_SIGNING_KEY; a dev server needs none)")
	asJSON := fs.Bool("json", false, "print the server's JSON answer instead of text")
	return c, asJSON
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// do sends a request and decodes the "data" of a 200 into out (raw: the whole body).
func (c *restClient) do(ctx context.Context, method, path string, body any, out any) (json.RawMessage, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.url, "/")+path, rd)
	if err != nil {
		return nil, usageErr("--url %q: %v", c.url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.signingKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.signingKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &cliError{code: exitFailed, msg: fmt.Sprintf("%s: %v (is the server running? set --url or TEMPEST_URL)", c.url, err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &cliError{code: exitFailed, msg: err.Error()}
	}
	if resp.StatusCode != 200 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		code := exitFailed
		switch {
		case resp.StatusCode == 404:
			code = exitNotFound
		case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 401 && resp.StatusCode != 403:
			code = exitUsage
		}
		return raw, &cliError{code: code, msg: fmt.Sprintf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, msg)}
	}
	if out != nil {
		if err := json.Unmarshal(raw, &struct{ Data any }{out}); err != nil {
			return raw, &cliError{code: exitFailed, msg: fmt.Sprintf("%s %s: unexpected answer: %v", method, path, err)}
		}
	}
	return raw, nil
}

// printJSON prints an answer as indented JSON.
func printJSON(w io.Writer, raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		_, err = w.Write(raw)
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// repeated is a flag that may be given more than once (or comma-separated).
type repeated []string

func (r *repeated) String() string { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*r = append(*r, s)
		}
	}
	return nil
}

// parse parses a client command's flags; positional arguments may come before or after
// them (tempest runs get ID --json).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(os.Stderr)
				fs.Usage()
				return nil, err
			}
			return nil, usageErr("%s: %v (run with -h for the flags)", strings.TrimPrefix(fs.Name(), "tempest "), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// sendCmd is `tempest send`: an event from flags, or events (an object or an array) as
// JSON on stdin.
func sendCmd(ctx context.Context, args []string, stdin io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("tempest send", flag.ContinueOnError)
	c, asJSON := clientFlags(fs)
	fs.StringVar(&c.eventKey, "event-key", envOr("INNGEST_EVENT_KEY", "dev"), "event key ($INNGEST_EVENT_KEY; any key in dev)")
	data := fs.String("data", "{}", "the event's data, a JSON object")
	id := fs.String("id", "", "the event's id, for deduplication (optional)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: tempest send NAME [--data JSON] [--id ID]   or   tempest send < events.json\n\n")
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	var body json.RawMessage
	switch len(pos) {
	case 0: // JSON on stdin
		b, err := io.ReadAll(io.LimitReader(stdin, 64<<20))
		if err != nil {
			return err
		}
		if !json.Valid(b) || len(bytes.TrimSpace(b)) == 0 {
			return usageErr("send: stdin is not JSON: give an event ({\"name\": ..., \"data\": {...}}) or an array of them, or NAME and --data")
		}
		body = b
	case 1:
		if !json.Valid([]byte(*data)) || !strings.HasPrefix(strings.TrimSpace(*data), "{") {
			return usageErr("send: --data %q is not a JSON object", *data)
		}
		ev := map[string]any{"name": pos[0], "data": json.RawMessage(*data)}
		if *id != "" {
			ev["id"] = *id
		}
		body, _ = json.Marshal(ev)
	default:
		return usageErr("send: one event name, got %q", pos)
	}
	var res struct {
		IDs    []string `json:"ids"`
		Status int      `json:"status"`
		Error  string   `json:"error"`
	}
	raw, err := c.do(ctx, http.MethodPost, "/e/"+url.PathEscape(c.eventKey), body, nil)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(out, raw)
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return &cliError{code: exitFailed, msg: "unexpected answer: " + string(raw)}
	}
	for _, id := range res.IDs {
		fmt.Fprintln(out, id)
	}
	return nil
}

const runsUsage = `Usage:
  tempest runs list [--status S]... [--app A] [--function F] [--from T] [--until T] [--all]
  tempest runs get ID          a run, with its output
  tempest runs trace ID        a run's steps
  tempest runs cancel ID
  tempest runs rerun ID [--from-step STEP [--input JSON]]
`

// runsCmd is `tempest runs`.
func runsCmd(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return usageErr("%s", runsUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("tempest runs "+sub, flag.ContinueOnError)
	c, asJSON := clientFlags(fs)
	fs.Usage = func() { fmt.Fprint(fs.Output(), runsUsage+"\n"); fs.PrintDefaults() }
	one := func(pos []string) (string, error) {
		if len(pos) != 1 {
			return "", usageErr("runs %s: give one run id", sub)
		}
		return url.PathEscape(pos[0]), nil
	}
	switch sub {
	case "list":
		var statuses repeated
		fs.Var(&statuses, "status", "QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, SKIPPED (repeat or comma-separate)")
		app := fs.String("app", "", "app id")
		fn := fs.String("function", "", "function id (within --app, or fully qualified)")
		from := fs.String("from", "", "RFC 3339: runs from this time on (of --time-field)")
		until := fs.String("until", "", "RFC 3339: runs before this time")
		field := fs.String("time-field", "", "queuedAt (default), startedAt or endedAt")
		order := fs.String("order", "", "DESC (default) or ASC")
		limit := fs.Int("limit", 20, "runs per page (1-100)")
		cond := fs.String("if", "", "CEL over the triggering event")
		all := fs.Bool("all", false, "follow the pages to the end")
		if _, err := parse(fs, args); err != nil {
			return err
		}
		q := url.Values{}
		for k, v := range map[string]string{"app_id": *app, "function_id": *fn, "from": *from, "until": *until,
			"time_field": *field, "order": *order, "if": *cond, "limit": fmt.Sprint(*limit)} {
			if v != "" {
				q.Set(k, v)
			}
		}
		for _, s := range statuses {
			q.Add("status", s)
		}
		var runs []api.RunV2
		for {
			var page struct {
				Data []api.RunV2 `json:"data"`
				Page struct {
					Cursor  string `json:"cursor"`
					HasMore bool   `json:"hasMore"`
				} `json:"page"`
			}
			raw, err := c.do(ctx, http.MethodGet, "/v2/runs?"+q.Encode(), nil, nil)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(raw, &page); err != nil {
				return &cliError{code: exitFailed, msg: "unexpected answer: " + err.Error()}
			}
			runs = append(runs, page.Data...)
			if !*all || !page.Page.HasMore {
				break
			}
			q.Set("cursor", page.Page.Cursor)
		}
		if *asJSON {
			b, _ := json.Marshal(runs)
			return printJSON(out, b)
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RUN\tSTATUS\tFUNCTION\tQUEUED\tENDED")
		for _, r := range runs {
			ended := "-"
			if r.EndedAt != nil {
				ended = r.EndedAt.Local().Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Status, r.Function.ID, r.QueuedAt.Local().Format(time.DateTime), ended)
		}
		return tw.Flush()
	case "get", "trace":
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		id, err := one(pos)
		if err != nil {
			return err
		}
		if sub == "get" {
			var r api.RunV2
			raw, err := c.do(ctx, http.MethodGet, "/v2/runs/"+id, nil, &r)
			if err != nil || *asJSON {
				return jsonOr(out, raw, err)
			}
			fmt.Fprintf(out, "run       %s\nfunction  %s\nstatus    %s\nqueued    %s\n", r.ID, r.Function.ID, r.Status, r.QueuedAt.Local().Format(time.RFC3339))
			if r.EndedAt != nil {
				fmt.Fprintf(out, "ended     %s\n", r.EndedAt.Local().Format(time.RFC3339))
			}
			fmt.Fprintf(out, "event     %s (%s)\n", r.Trigger.EventID, r.Trigger.EventName)
			if r.RerunOf != "" {
				fmt.Fprintf(out, "rerun of  %s\n", r.RerunOf)
			}
			if len(r.Output) > 0 {
				fmt.Fprintf(out, "output    %s\n", r.Output)
			}
			return nil
		}
		var tr api.RunTrace
		raw, err := c.do(ctx, http.MethodGet, "/v2/runs/"+id+"/trace?include_output=true", nil, &tr)
		if err != nil || *asJSON {
			return jsonOr(out, raw, err)
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STEP\tKIND\tSTATUS\tATTEMPTS\tDURATION\tERROR")
		for _, s := range tr.Steps {
			d := "-"
			if s.EndedAt != nil {
				d = s.EndedAt.Sub(s.StartedAt).Round(time.Millisecond).String()
			}
			e := ""
			if s.Error != nil {
				e = s.Error.Name + ": " + s.Error.Message
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", s.ID, s.Kind, s.Status, len(s.Attempts), d, e)
		}
		return tw.Flush()
	case "cancel":
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		id, err := one(pos)
		if err != nil {
			return err
		}
		if _, err := c.do(ctx, http.MethodDelete, "/v1/runs/"+id, nil, nil); err != nil {
			return err
		}
		fmt.Fprintln(out, "cancelled", pos[0])
		return nil
	case "rerun":
		step := fs.String("from-step", "", "rerun from this step: the steps before it reuse their recorded results")
		input := fs.String("input", "", "JSON the step reads with step.Input (with --from-step)")
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		id, err := one(pos)
		if err != nil {
			return err
		}
		req := api.RerunRequest{}
		if *step != "" {
			req.FromStep = &api.RerunFrom{StepID: *step}
			if *input != "" {
				if !json.Valid([]byte(*input)) {
					return usageErr("runs rerun: --input %q is not JSON", *input)
				}
				req.FromStep.Input = json.RawMessage(*input)
			}
		} else if *input != "" {
			return usageErr("runs rerun: --input needs --from-step")
		}
		var r api.Rerun
		raw, err := c.do(ctx, http.MethodPost, "/v2/runs/"+id+"/rerun", req, &r)
		if err != nil || *asJSON {
			return jsonOr(out, raw, err)
		}
		fmt.Fprintln(out, r.RunID)
		return nil
	default:
		return usageErr("runs: unknown subcommand %q\n\n%s", sub, runsUsage)
	}
}

func jsonOr(out io.Writer, raw json.RawMessage, err error) error {
	if err != nil {
		return err
	}
	return printJSON(out, raw)
}

const replayUsage = `Usage:
  tempest replay start --app A --function F --from T --until T [--status S]... [--rate N] [--if CEL] [--name N] [--wait]
  tempest replay status ID [--wait]
  tempest replay cancel ID
`

// replayCmd is `tempest replay`.
func replayCmd(ctx context.Context, args []string, out io.Writer, tty bool) error {
	if len(args) == 0 {
		return usageErr("%s", replayUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("tempest replay "+sub, flag.ContinueOnError)
	c, asJSON := clientFlags(fs)
	fs.Usage = func() { fmt.Fprint(fs.Output(), replayUsage+"\n"); fs.PrintDefaults() }
	wait := fs.Bool("wait", false, "follow the progress until the replay ends (exit 1 if it failed or was cancelled)")
	var r api.Replay
	switch sub {
	case "start":
		var statuses repeated
		fs.Var(&statuses, "status", "FAILED (default), CANCELLED, COMPLETED (repeat or comma-separate)")
		req := api.ReplayRequest{}
		fs.StringVar(&req.AppID, "app", "", "app id")
		fs.StringVar(&req.FunctionID, "function", "", "function id within the app")
		fs.StringVar(&req.Name, "name", "", "a name for the replay")
		fs.StringVar(&req.If, "if", "", "CEL over the triggering event")
		fs.Float64Var(&req.Rate, "rate", api.DefaultReplayRate, "runs started per second")
		from := fs.String("from", "", "RFC 3339: runs queued from this time")
		until := fs.String("until", "", "RFC 3339: runs queued until this time (default now)")
		if _, err := parse(fs, args); err != nil {
			return err
		}
		req.Statuses = statuses
		for _, t := range []struct {
			s   string
			dst **time.Time
		}{{*from, &req.From}, {*until, &req.Until}} {
			if t.s == "" {
				continue
			}
			v, err := time.Parse(time.RFC3339Nano, t.s)
			if err != nil {
				return usageErr("replay start: %q is not an RFC 3339 time", t.s)
			}
			*t.dst = &v
		}
		if req.Until == nil {
			now := time.Now()
			req.Until = &now
		}
		raw, err := c.do(ctx, http.MethodPost, "/v1/replays", req, &r)
		if err != nil || (*asJSON && !*wait) {
			return jsonOr(out, raw, err)
		}
		if !*wait {
			fmt.Fprintln(out, r.ID)
			return nil
		}
	case "status", "cancel":
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageErr("replay %s: give one replay id", sub)
		}
		method := http.MethodGet
		if sub == "cancel" {
			method = http.MethodDelete
		}
		raw, err := c.do(ctx, method, "/v1/replays/"+url.PathEscape(pos[0]), nil, &r)
		if err != nil || (*asJSON && !*wait) {
			return jsonOr(out, raw, err)
		}
		if !*wait {
			fmt.Fprintln(out, progressLine(r))
			return nil
		}
	default:
		return usageErr("replay: unknown subcommand %q\n\n%s", sub, replayUsage)
	}
	// --wait: a bar redrawn in place on a terminal, a line per change otherwise.
	last := ""
	for {
		line := progressLine(r)
		switch {
		case tty:
			fmt.Fprintf(out, "\r\033[K%s %s", bar(r), line)
		case line != last:
			fmt.Fprintln(out, line)
		}
		last = line
		if r.Status != api.ReplayRunning {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if _, err := c.do(ctx, http.MethodGet, "/v1/replays/"+r.ID, nil, &r); err != nil {
			return err
		}
	}
	if tty {
		fmt.Fprintln(out)
	}
	if *asJSON {
		b, _ := json.Marshal(r)
		return printJSON(out, b)
	}
	if r.Status != api.ReplayCompleted {
		return &cliError{code: exitFailed, msg: fmt.Sprintf("replay %s ended %s %s", r.ID, r.Status, r.Error)}
	}
	return nil
}

// progressLine is a replay's progress in one line.
func progressLine(r api.Replay) string {
	matched := "?"
	if r.Matched != nil {
		matched = fmt.Sprint(*r.Matched)
	}
	s := fmt.Sprintf("replay %s %s: %d/%s started, %d completed, %d failed, %d running", r.ID, r.Status, r.Started, matched,
		r.Runs.Completed, r.Runs.Failed+r.Runs.Cancelled, r.Runs.Running)
	if r.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped", r.Skipped)
	}
	return s
}

// bar is a 30-character progress bar of runs started.
func bar(r api.Replay) string {
	const width = 30
	n := 0
	if r.Matched != nil && *r.Matched > 0 {
		n = r.Started * width / *r.Matched
	} else if r.Matched != nil && r.Status != api.ReplayRunning {
		n = width
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

const appsUsage = `Usage:
  tempest apps list          the environment's apps (Go and Inngest SDK apps)
  tempest apps sync URL      sync the Inngest SDK app served at URL (like http://127.0.0.1:3000/api/inngest)
  tempest apps resync APP    sync a synced SDK app again from its URL (after a deploy)
`

// appsCmd is `tempest apps`: syncing Inngest SDK apps.
func appsCmd(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return usageErr("%s", appsUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("tempest apps "+sub, flag.ContinueOnError)
	c, asJSON := clientFlags(fs)
	fs.Usage = func() { fmt.Fprint(fs.Output(), appsUsage+"\n"); fs.PrintDefaults() }
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if sub == "list" {
		var apps []api.AppSummary
		raw, err := c.do(ctx, http.MethodGet, "/v2/apps", nil, &apps)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out, raw)
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "APP\tFUNCTIONS\tSYNCED\tSERVED BY")
		for _, a := range apps {
			by := "Go workers on " + a.TaskQueue
			if a.URL != "" {
				by = a.SDK + " at " + a.URL
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", a.ID, a.FunctionCount, a.SyncedAt.Local().Format(time.DateTime), by)
		}
		return tw.Flush()
	}
	if len(pos) != 1 {
		return usageErr("apps %s: give one %s", sub, map[bool]string{true: "URL", false: "app id"}[sub == "sync"])
	}
	var res api.SyncResult
	var raw json.RawMessage
	switch sub {
	case "sync":
		raw, err = c.do(ctx, http.MethodPost, "/v2/apps", map[string]string{"url": pos[0]}, &res)
	case "resync":
		raw, err = c.do(ctx, http.MethodPost, "/v2/apps/"+url.PathEscape(pos[0])+"/sync", nil, &res)
	default:
		return usageErr("%s", appsUsage)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(out, raw)
	}
	changed := "unchanged"
	if res.Modified {
		changed = "updated"
	}
	fmt.Fprintf(out, "app %s: %d functions, %s (%s sync)\n", res.AppID, res.Functions, changed, res.Kind)
	return nil
}
