// Bodies stream both ways: 1 GB up and 1 GB down through nsproxy, and a client that stops reading, while its memory stays flat.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { skipOnDeno, startNsproxy, type Running } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, nsExec, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("stream");
const NS = `${prefix}a`;
const MB = 1024 * 1024;
const SIZE = Number(process.env.NSPROXY_TEST_STREAM_MB ?? 1024) * MB;
/**
 * Growth allowed over the RSS before a transfer while 1 GB passes: a few buffers, never the body.
 * Measured on the project VM, about 60 runs, most under shared load (load average 10 to 28): upload +5 to
 * +21 MB, median +12, once +24.6 (Bun hands over a new buffer of up to 512 kB per read; a collection is
 * asked for every MiB read, src/runtime/bun/read-garbage.ts; without it +19 to +35 MB, median +27: the two
 * overlap, so one run catches a missing collection about half the time); download +0 to +15 MB, twice
 * +19 to +21 (the code before reached +23 too); slow reader +0 to +5 MB.
 */
// 28 MB rather than the 24 the figures suggest: one run in about 60 under heavy load reached +24.6.
const BULK_RSS_BUDGET = 28 * MB;
const SLOW_READER_RSS_BUDGET = 16 * MB;
/** Under Deno glibc's malloc keeps the freed read buffers of a bulk transfer for a while (README, Deno): printed, not bounded. */
const denoBulkRss = skipOnDeno("the RSS bounds of the 1 GB transfers (the figures are printed; the slow reader's bound holds)");

function rss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(status.match(/^VmRSS:\s+(\d+) kB/m)?.[1] ?? Number.NaN) * 1024;
}

/** Run `work` while sampling the daemon's RSS every 10 ms; returns the work's result and the peak seen. */
async function peakRss<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = rss(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rss(pid));
  }, 10);
  try {
    const result = await work();
    return { result, peak: Math.max(peak, rss(pid)) };
  } finally {
    clearInterval(timer);
  }
}

describe.skipIf(Boolean(skipReason))("streaming bodies", () => {
  const upstream = startUpstream();
  let daemon: Running;
  let baseline = 0;

  beforeAll(async () => {
    addNetns(NS);
    daemon = startNsproxy(["run", "-l", "127.0.0.1:8090", "-u", `http://127.0.0.1:${upstream.port}`, "-n", NS, "-w", "2", "--no-access-log"]);
    await daemon.waitFor("attached 1/1");
    // Warm up so the baseline includes what every request allocates once (JIT, buffers).
    for (let i = 0; i < 20; i++) await nsExec(NS, ["curl", "-s", "-o", "/dev/null", "--data-binary", "x", "http://127.0.0.1:8090/warm"]);
    await nsExec(NS, ["curl", "-s", "-o", "/dev/null", "http://127.0.0.1:8090/bytes?n=16777216"]);
    await nsExec(NS, ["sh", "-c", "head -c 16777216 /dev/zero | curl -sS -o /dev/null -T - -X POST -H 'Expect:' http://127.0.0.1:8090/warm"]);
    baseline = rss(daemon.proc.pid);
  });

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    upstream.stop(true);
    cleanupNetns(prefix);
  });

  test("1 GB upload arrives whole, memory bounded", async () => {
    const { result: r, peak } = await peakRss(daemon.proc.pid, () =>
      nsExec(NS, ["sh", "-c", `head -c ${SIZE} /dev/zero | curl -sS -T - -X POST -H 'Expect:' http://127.0.0.1:8090/upload`], 120_000),
    );
    expect(r.code).toBe(0);
    const echo = JSON.parse(r.stdout) as Echo;
    expect(echo.bodyBytes).toBe(SIZE);
    console.log(`upload: baseline RSS ${(baseline / MB).toFixed(1)} MB, peak ${(peak / MB).toFixed(1)} MB (+${((peak - baseline) / MB).toFixed(1)})`);
    if (!denoBulkRss) expect(peak - baseline).toBeLessThan(BULK_RSS_BUDGET);
  });

  test("1 GB download arrives whole, memory bounded", async () => {
    const before = rss(daemon.proc.pid);
    const { result: r, peak } = await peakRss(daemon.proc.pid, () =>
      nsExec(NS, ["sh", "-c", `curl -sS http://127.0.0.1:8090/bytes?n=${SIZE} | wc -c`], 120_000),
    );
    expect(r.code).toBe(0);
    expect(Number(r.stdout.trim())).toBe(SIZE);
    console.log(`download: RSS before ${(before / MB).toFixed(1)} MB, peak ${(peak / MB).toFixed(1)} MB`);
    if (!denoBulkRss) expect(peak - before).toBeLessThan(BULK_RSS_BUDGET);
  });

  test("a client that stops reading holds back the upstream, not memory", async () => {
    const before = rss(daemon.proc.pid);
    // 1 GB offered by the upstream, read at 1 MB/s for 3 s: the rest must wait in the upstream, not in nsproxy.
    const { result: r, peak } = await peakRss(daemon.proc.pid, () =>
      nsExec(NS, ["sh", "-c", `curl -sS --limit-rate 1M --max-time 3 http://127.0.0.1:8090/bytes?n=${1024 * MB} | wc -c`], 30_000),
    );
    const got = Number(r.stdout.trim());
    expect(got).toBeGreaterThan(0);
    expect(got).toBeLessThan(64 * MB);
    console.log(`slow reader: ${(got / MB).toFixed(1)} MB read; RSS before ${(before / MB).toFixed(1)} MB, peak ${(peak / MB).toFixed(1)} MB`);
    expect(peak - before).toBeLessThan(SLOW_READER_RSS_BUDGET);
  });
});
