// `nsproxy top`: every tenant's requests/s, errors/s, open connections and bytes/s, refreshed each second from the admin socket.
import { defineCommand } from "citty";
import { AdminClient } from "../admin/client.ts";
import type { StatsView } from "../admin/types.ts";
import { parseInteger } from "../config/values.ts";
import { ConfigError } from "../errors.ts";
import { clientArgs, daemonPaths, rejectUnknownFlags } from "./args.ts";
import { isSortKey, renderTop, SORT_KEYS, type SortKey, selectStats } from "./top-view.ts";

const args = {
  sort: { type: "string", description: `Order of the tenants: ${SORT_KEYS.join(", ")} (busiest first; name ascending; default requests)`, valueHint: "KEY" },
  limit: { type: "string", description: "Show at most N tenants (on a terminal, also no more than fit)", valueHint: "N" },
  once: { type: "boolean", description: "Print one sample and exit" },
  json: { type: "boolean", description: "Print the stats as JSON: with --once one document, else one line per refresh" },
  config: clientArgs.config,
  "admin-socket": clientArgs["admin-socket"],
} as const;

/** The daemon samples its counters once a second; asking more often would show the same rates again. */
const REFRESH_MS = 1000;
/** A daemon that takes longer than this to answer a stats request is reported, not waited for. */
const TIMEOUT_MS = 10_000;

const LIMIT = { min: 1, max: 1_000_000, example: 20 } as const;

// Terminal control: alternate screen, cursor hidden/shown, home + clear.
const ENTER = "\x1b[?1049h\x1b[?25l";
const LEAVE = "\x1b[?25h\x1b[?1049l";
const CLEAR = "\x1b[H\x1b[2J";
const CTRL_C = "\x03";

export default defineCommand({
  meta: { name: "top", description: "Live per-tenant requests/s, errors/s, open connections and bytes/s of the running daemon" },
  args,
  async run({ args: parsed, rawArgs }) {
    rejectUnknownFlags(rawArgs, args);
    const sort = sortKey(parsed.sort);
    const limit = parsed.limit === undefined ? undefined : limitArg(parsed.limit);
    const client = new AdminClient(daemonPaths(parsed).socket, TIMEOUT_MS);
    if (parsed.once) {
      const view = await client.stats();
      if (parsed.json) return print(JSON.stringify(selectStats(view, { sort, limit }), null, 2));
      for (const line of renderTop(view, { sort, limit })) print(line);
      return;
    }
    await live(client, { sort, limit, json: Boolean(parsed.json) });
  },
});

function sortKey(v: string | undefined): SortKey {
  if (v === undefined) return "requests";
  if (isSortKey(v)) return v;
  throw new ConfigError(`${JSON.stringify(v)} is not one of ${SORT_KEYS.join(", ")}`, "--sort");
}

function limitArg(v: string): number {
  try {
    return parseInteger(v, "limit", LIMIT.min, LIMIT.max, LIMIT.example);
  } catch (e) {
    throw new ConfigError(e instanceof Error ? e.message : String(e), "--limit");
  }
}

/**
 * Refresh every second until q, Ctrl-C, SIGTERM/SIGHUP, or a closed pipe. On a terminal: the alternate screen,
 * redrawn in place, cut to its size (and redrawn when it is resized), keys read in raw mode; all restored on the
 * way out. Elsewhere: one plain block per refresh (or one JSON line with --json), blocks separated by a blank line.
 */
async function live(client: AdminClient, opts: { sort: SortKey; limit?: number; json: boolean }): Promise<void> {
  const out = process.stdout;
  const stdin = process.stdin;
  const screen = Boolean(out.isTTY) && !opts.json;
  const keys = screen && Boolean(stdin.isTTY);

  let done = false;
  let wake: () => void = () => {};
  let timer: ReturnType<typeof setTimeout> | undefined;
  const quit = () => {
    done = true;
    wake();
  };
  const onKey = (chunk: Buffer | string) => {
    const s = chunk.toString();
    if (s.includes("q") || s.includes("Q") || s.includes(CTRL_C)) quit();
  };
  const onOutError = (e: NodeJS.ErrnoException) => {
    // The reader went away (`nsproxy top | head`): that is the end, not a failure.
    if (e?.code === "EPIPE") quit();
  };

  let last: StatsView | undefined;
  let blocks = 0;
  const draw = () => {
    if (!last || done) return;
    if (opts.json) {
      out.write(`${JSON.stringify(selectStats(last, opts))}\n`);
    } else if (screen) {
      const rows = out.rows > 0 ? out.rows : undefined;
      const columns = out.columns > 0 ? out.columns : undefined;
      // \r\n: correct whether or not the terminal translates \n; no newline after the last line, so nothing scrolls.
      out.write(CLEAR + renderTop(last, { sort: opts.sort, limit: opts.limit, rows, columns }).join("\r\n"));
    } else {
      out.write(`${blocks++ > 0 ? "\n" : ""}${renderTop(last, opts).join("\n")}\n`);
    }
  };

  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    if (keys) {
      stdin.off("data", onKey);
      stdin.setRawMode(false);
      stdin.pause();
    }
    if (screen) out.write(LEAVE);
  };

  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  for (const s of signals) process.on(s, quit);
  out.on("error", onOutError);
  process.on("exit", restore);
  if (screen) {
    out.write(ENTER);
    out.on("resize", draw);
  }
  if (keys) {
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on("data", onKey);
  }
  try {
    while (!done) {
      const started = Date.now();
      const stopped = new Promise<undefined>((r) => (wake = () => r(undefined)));
      const view = await Promise.race([client.stats(), stopped]);
      if (done || !view) break;
      last = view;
      draw();
      await Promise.race([stopped, new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, REFRESH_MS - (Date.now() - started)))))]);
      clearTimeout(timer);
    }
  } finally {
    clearTimeout(timer);
    for (const s of signals) process.off(s, quit);
    out.off("error", onOutError);
    if (screen) out.off("resize", draw);
    restore();
    process.off("exit", restore);
  }
}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}
