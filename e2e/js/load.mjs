// Load generator for `tempest bench --intake`: sends events with the official Inngest SDK,
// times each send() and prints one JSON line with the figures.
//
// Usage:
//   node load.mjs <baseUrl> batch <requests> <eventsPerRequest> [--name N] [--prefix P] [--warmup W]
//     sequential send()s of eventsPerRequest events each
//   node load.mjs <baseUrl> burst <sends> <concurrency> [--name N] [--prefix P] [--warmup W]
//     single-event send()s from concurrency concurrent senders
//
// Every event is {name, data: {k: "<prefix>-<i>", i, pad}} (about 100 bytes of data), with i
// counting every event this process sends, warm-up included. The W warm-up send()s (batch:
// of at most 50 events each; burst: single events, concurrency at a time) are not counted.
// Output: {mode, sends, events, seconds, eventsPerSec, p50ms, p90ms, p99ms, maxms, errors,
// warmupEvents, warmupErrors, firstError}: sends, events and the percentiles count the
// successful measured send()s; warmupEvents the events of the successful warm-up send()s.
import { performance } from "node:perf_hooks";
import { Inngest } from "inngest";

function usage(msg) {
  console.error(`load.mjs: ${msg}\nusage: node load.mjs <baseUrl> batch <requests> <eventsPerRequest> | burst <sends> <concurrency> [--name N] [--prefix P] [--warmup W]`);
  process.exit(2);
}

const argv = process.argv.slice(2);
const opts = { name: "bench/intake", prefix: `load-${Date.now().toString(36)}`, warmup: undefined };
const pos = [];
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a.startsWith("--")) {
    const key = a.slice(2);
    if (!(key in opts) || i + 1 >= argv.length) usage(`bad option ${a}`);
    opts[key] = argv[++i];
  } else {
    pos.push(a);
  }
}
if (pos.length !== 4) usage("want 4 positional arguments");
const [baseUrl, mode] = pos;
const x = Number.parseInt(pos[2], 10);
const y = Number.parseInt(pos[3], 10);
if (!(x > 0 && y > 0)) usage("counts must be positive integers");
if (mode !== "batch" && mode !== "burst") usage(`unknown mode ${mode}`);
const warmup = opts.warmup === undefined ? (mode === "batch" ? 2 : 2 * y) : Number.parseInt(opts.warmup, 10);

const inngest = new Inngest({ id: "tempest-load", baseUrl, isDev: true });

const pad = "x".repeat(60);
let counter = 0;
function event() {
  const i = counter++;
  return { name: opts.name, data: { k: `${opts.prefix}-${i}`, i, pad } };
}

let errors = 0;
let firstError;
// send() once, timed; the latency in ms, or undefined when it failed.
async function timedSend(payload) {
  const t0 = performance.now();
  try {
    await inngest.send(payload);
    return performance.now() - t0;
  } catch (err) {
    errors++;
    firstError ??= String(err?.message ?? err);
    return undefined;
  }
}

// n send()s of make() from conc concurrent senders: the latencies of the successful ones
// and how many events they sent.
async function run(n, conc, make) {
  const lat = [];
  let sent = 0;
  let next = 0;
  const sender = async () => {
    while (next < n) {
      next++;
      const payload = make();
      const ms = await timedSend(payload);
      if (ms !== undefined) {
        lat.push(ms);
        sent += Array.isArray(payload) ? payload.length : 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(conc, n) }, sender));
  return { lat, sent };
}

const batchOf = (k) => () => Array.from({ length: k }, event);

// Warm-up: connections, the SDK's and V8's first-call costs.
let warmupEvents = 0;
if (warmup > 0) {
  warmupEvents = (mode === "batch" ? await run(warmup, 1, batchOf(Math.min(y, 50))) : await run(warmup, y, event)).sent;
}
const warmupErrors = errors;
errors = 0;
firstError = undefined;

const began = performance.now();
const { lat, sent: events } = mode === "batch" ? await run(x, 1, batchOf(y)) : await run(x, y, event);
const seconds = (performance.now() - began) / 1000;

lat.sort((a, b) => a - b);
// Nearest rank.
const pct = (q) => (lat.length === 0 ? 0 : lat[Math.min(lat.length - 1, Math.ceil((q / 100) * lat.length) - 1)]);
const r = (v) => Math.round(v * 100) / 100;
const sends = lat.length;
console.log(
  JSON.stringify({
    mode,
    sends,
    events,
    seconds: r(seconds),
    eventsPerSec: r(events / seconds),
    p50ms: r(pct(50)),
    p90ms: r(pct(90)),
    p99ms: r(pct(99)),
    maxms: r(lat.length ? lat[lat.length - 1] : 0),
    errors,
    warmupEvents,
    warmupErrors,
    firstError,
  }),
);
