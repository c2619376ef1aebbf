// Inngest JS v4 test app served with express, used by cmd/tempest's end-to-end test.
//
// Usage: node app.mjs
// Environment:
//   PORT           listen port on 127.0.0.1 (default 3939); functions are served on /api/inngest
//   APP_ID         Inngest app id (default "shop")
//   CHECKPOINTING  "off" creates the client with checkpointing: false (default: SDK default, on)
//   JSON_LIMIT     express.json's body limit (default 50mb; Inngest's apps are told to allow 4mb)
//   INNGEST_DEV / INNGEST_BASE_URL / INNGEST_SIGNING_KEY / INNGEST_EVENT_KEY / ...
//                  read by the SDK itself: dev mode with INNGEST_DEV=http://tempest:8288, or signed
//                  cloud mode with INNGEST_BASE_URL + INNGEST_SIGNING_KEY + INNGEST_EVENT_KEY.
//
// Test hooks: GET /_state returns {counts, log}; POST /_reset clears both. Step bodies bump
// counts["<fn>.<step>"] so a test can assert every step body ran exactly once.
import express from "express";
import { Inngest, NonRetriableError, RetryAfterError, referenceFunction } from "inngest";
import { serve } from "inngest/express";

const counts = {};
const log = [];
const bump = (key) => {
  counts[key] = (counts[key] ?? 0) + 1;
  return counts[key];
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const clientOpts = { id: process.env.APP_ID || "shop" };
if (process.env.CHECKPOINTING === "off") clientOpts.checkpointing = false;
const inngest = new Inngest(clientOpts);

// All functions use the v4 form createFunction({ id, triggers, ...options }, handler).

const hello = inngest.createFunction(
  { id: "hello", triggers: [{ event: "shop/hello" }] },
  async ({ event, step }) => {
    return await step.run("greet", () => {
      bump("hello.greet");
      return { message: `Hello ${event.data.name}` };
    });
  },
);

const three = inngest.createFunction(
  { id: "three", triggers: [{ event: "shop/three" }] },
  async ({ step }) => {
    const a = await step.run("a", () => {
      bump("three.a");
      return "a";
    });
    const b = await step.run("b", () => {
      bump("three.b");
      return "b";
    });
    const c = await step.run("c", () => {
      bump("three.c");
      return "c";
    });
    return { out: a + b + c };
  },
);

const flaky = inngest.createFunction(
  { id: "flaky", retries: 3, triggers: [{ event: "shop/flaky" }] },
  async ({ step, attempt }) => {
    return await step.run("unstable", () => {
      bump("flaky.unstable");
      log.push({ fn: "flaky", what: "unstable", attempt });
      // A retry-after of 1 s keeps the test short (the default backoff starts at 15 s).
      if (attempt < 2) throw new RetryAfterError("boom", "1s");
      return "ok";
    });
  },
);

const fatal = inngest.createFunction(
  { id: "fatal", retries: 3, triggers: [{ event: "shop/fatal" }] },
  async ({ step }) => {
    return await step.run("doomed", () => {
      bump("fatal.doomed");
      throw new NonRetriableError("no way");
    });
  },
);

const caught = inngest.createFunction(
  { id: "caught", retries: 0, triggers: [{ event: "shop/caught" }] },
  async ({ step }) => {
    try {
      await step.run("fails", () => {
        bump("caught.fails");
        throw new Error("inner");
      });
      return { recovered: false };
    } catch (err) {
      await step.run("recover", () => {
        bump("caught.recover");
        return "recovered";
      });
      return { recovered: true, message: err.message };
    }
  },
);

const later = inngest.createFunction(
  { id: "later", retries: 2, triggers: [{ event: "shop/retryafter" }] },
  async ({ step, attempt }) => {
    return await step.run("ra", () => {
      bump("later.ra");
      log.push({ fn: "later", what: "ra", attempt });
      if (attempt === 0) throw new RetryAfterError("slow down", "1s");
      return "done";
    });
  },
);

const sleepy = inngest.createFunction(
  { id: "sleepy", triggers: [{ event: "shop/sleep" }] },
  async ({ step }) => {
    await step.run("before", () => {
      bump("sleepy.before");
      return Date.now();
    });
    await step.sleep("nap", "1s");
    await step.run("after", () => {
      bump("sleepy.after");
      return Date.now();
    });
    return "woke";
  },
);

const waiter = inngest.createFunction(
  { id: "waiter", triggers: [{ event: "shop/wait" }] },
  async ({ event, step }) => {
    const ev = await step.waitForEvent("approval", {
      event: "shop/approved",
      timeout: event.data.timeout || "30s",
      match: "data.orderId",
    });
    return { approved: ev ? ev.data : null };
  },
);

// Invoke-only: v4 allows omitting triggers (registered with an empty trigger list).
const child = inngest.createFunction({ id: "child" }, async ({ event }) => {
  return { doubled: event.data.n * 2 };
});

const parent = inngest.createFunction(
  { id: "parent", triggers: [{ event: "shop/invoke" }] },
  async ({ event, step }) => {
    const r = await step.invoke("call-child", { function: child, data: { n: event.data.n } });
    let goResult;
    if (event.data.goFn) {
      goResult = await step.invoke("call-go", {
        function: referenceFunction({ appId: event.data.goApp, functionId: event.data.goFn }),
        data: { name: "Ada" },
      });
    }
    return { child: r, go: goResult ?? null };
  },
);

const fanout = inngest.createFunction(
  { id: "fanout", triggers: [{ event: "shop/parallel" }] },
  async ({ step }) => {
    const [x, y, z] = await Promise.all([
      step.run("p1", () => {
        bump("fanout.p1");
        return 1;
      }),
      step.run("p2", () => {
        bump("fanout.p2");
        return 2;
      }),
      step.run("p3", () => {
        bump("fanout.p3");
        return 3;
      }),
    ]);
    return x + y + z;
  },
);

const sender = inngest.createFunction(
  { id: "sender", triggers: [{ event: "shop/send" }] },
  async ({ step }) => {
    await step.sendEvent("emit", { name: "shop/hello", data: { name: "from-sender" } });
    return "sent";
  },
);

const failing = inngest.createFunction(
  {
    id: "failing",
    retries: 0,
    triggers: [{ event: "shop/fail" }],
    onFailure: async ({ error }) => {
      bump("onFailure");
      log.push({ fn: "failing-failure", what: error.message });
    },
  },
  async ({ step }) => {
    await step.run("x", () => {
      bump("failing.x");
      throw new Error("always");
    });
  },
);

const cancellable = inngest.createFunction(
  {
    id: "cancellable",
    triggers: [{ event: "shop/cancellable" }],
    cancelOn: [{ event: "shop/cancel", match: "data.id" }],
  },
  async ({ step }) => {
    await step.run("first", () => {
      bump("cancellable.first");
      return null;
    });
    await step.sleep("long", "30s");
    await step.run("second", () => {
      bump("cancellable.second");
      return null;
    });
    return "not cancelled";
  },
);

const throttled = inngest.createFunction(
  { id: "throttled", triggers: [{ event: "shop/throttle" }], throttle: { limit: 1, period: "2s" } },
  async ({ step }) => {
    await step.run("t", () => {
      bump("throttled.t");
      log.push({ fn: "throttled", what: Date.now() });
      return null;
    });
  },
);

let running = 0;
const limited = inngest.createFunction(
  { id: "limited", triggers: [{ event: "shop/concurrency" }], concurrency: { limit: 1 } },
  async ({ step }) => {
    await step.run("work", async () => {
      bump("limited.work");
      running++;
      counts["limited.max"] = Math.max(counts["limited.max"] ?? 0, running);
      try {
        await sleep(300);
      } finally {
        running--;
      }
      return null;
    });
  },
);

const debounced = inngest.createFunction(
  { id: "debounced", triggers: [{ event: "shop/debounce" }], debounce: { period: "2s" } },
  async ({ event, step }) => {
    await step.run("d", () => {
      bump("debounced.d");
      log.push({ fn: "debounced", what: event.data });
      return null;
    });
  },
);

const batched = inngest.createFunction(
  { id: "batched", triggers: [{ event: "shop/batch" }], batchEvents: { maxSize: 3, timeout: "5s" } },
  async ({ events, step }) => {
    await step.run("b", () => {
      bump("batched.b");
      log.push({ fn: "batched", what: events.length });
      return events.length;
    });
  },
);

const tenstep = inngest.createFunction(
  { id: "tenstep", triggers: [{ event: "shop/tensteps" }] },
  async ({ step }) => {
    for (let i = 0; i < 10; i++) {
      await step.run(`s${i}`, async () => {
        bump(`tenstep.s${i}`);
        await sleep(100);
        return i;
      });
    }
    return "done";
  },
);

// Step "two" hangs when CRASH_HANG=1, so a test can kill the app while it runs (after "one"
// was checkpointed) and restart it without the variable.
const crashy = inngest.createFunction(
  { id: "crashy", triggers: [{ event: "shop/crash" }] },
  async ({ step }) => {
    await step.run("one", () => {
      bump("crashy.one");
      return 1;
    });
    const two = await step.run("two", async () => {
      bump("crashy.two");
      if (process.env.CRASH_HANG === "1") await sleep(120000);
      return 2;
    });
    return { two };
  },
);

// A cron trigger that fires once a year: the test triggers its schedule by hand.
const ticker = inngest.createFunction(
  { id: "ticker", triggers: [{ cron: "TZ=Europe/Paris 0 0 1 1 *" }] },
  async ({ event, step }) => {
    await step.run("tick", () => {
      bump("ticker.tick");
      log.push({ fn: "ticker", what: event.name });
      return null;
    });
  },
);

// One step that records when it began (BenchmarkSDKApp; load.mjs sends bench/intake).
const bench = inngest.createFunction(
  { id: "bench", triggers: [{ event: "bench/intake" }] },
  async ({ event, step }) => {
    await step.run("start", () => {
      bump("bench.start");
      if (String(event.data.k).startsWith("idle")) log.push({ fn: "bench", what: Date.now() });
      return null;
    });
  },
);

// Three steps, the second slow (1.5 s): a test stops Redis while it runs.
const outage = inngest.createFunction(
  { id: "outage", triggers: [{ event: "shop/outage" }] },
  async ({ step }) => {
    await step.run("one", () => bump("outage.one"));
    await step.run("two", async () => {
      bump("outage.two");
      await sleep(1500);
      return 2;
    });
    await step.run("three", () => bump("outage.three"));
    return "survived";
  },
);

// Steps with large results: event.data.mib MiB each (2.5 by default).
const big = inngest.createFunction(
  { id: "big", retries: 0, triggers: [{ event: "shop/big" }] },
  async ({ event, step }) => {
    const size = Math.round((event.data.mib ?? 2.5) * 1024 * 1024);
    const x = await step.run("x", () => "x".repeat(size));
    const y = await step.run("y", () => "y".repeat(size));
    return { x: x.length, y: y.length };
  },
);

const functions = [
  hello, three, flaky, fatal, caught, later, sleepy, waiter, child, parent,
  fanout, sender, failing, cancellable, throttled, limited, debounced, batched, tenstep, crashy, ticker, bench, outage, big,
];

const app = express();
// JSON_LIMIT: the largest request body the app reads (express's option; default 50mb).
app.use(express.json({ limit: process.env.JSON_LIMIT || "50mb" }));
app.get("/_state", (_req, res) => {
  res.json({ counts, log });
});
app.post("/_reset", (_req, res) => {
  for (const k of Object.keys(counts)) delete counts[k];
  log.length = 0;
  res.json({ ok: true });
});
// Calls Tempest makes, per function: counts["calls:<fnId>"].
app.use("/api/inngest", (req, _res, next) => {
  if (req.method === "POST" && req.query.fnId) bump(`calls:${req.query.fnId}`);
  next();
});
app.use("/api/inngest", serve({ client: inngest, functions }));

const port = Number.parseInt(process.env.PORT || "3939", 10);
const server = app.listen(port, "127.0.0.1", () => {
  console.log(`app.mjs: listening on http://127.0.0.1:${port}/api/inngest (${functions.length} functions)`);
});
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
