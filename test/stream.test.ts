// Bodies stream both ways: 200 MB up and 200 MB down through nsproxy, while its memory stays flat.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { startNsproxy, type Running } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, nsExec, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("stream");
const NS = `${prefix}a`;
const MB = 1024 * 1024;
const SIZE = Number(process.env.NSPROXY_TEST_STREAM_MB ?? 200) * MB;
/** Growth allowed over the warmed-up RSS while 200 MB pass each way: a few buffers, never the body. */
const RSS_BUDGET = 48 * MB;

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
    await nsExec(NS, ["curl", "-s", "-o", "/dev/null", "http://127.0.0.1:8090/bytes?n=4194304"]);
    baseline = rss(daemon.proc.pid);
  });

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    upstream.stop(true);
    cleanupNetns(prefix);
  });

  test("200 MB upload arrives whole, memory bounded", async () => {
    const { result: r, peak } = await peakRss(daemon.proc.pid, () =>
      nsExec(NS, ["sh", "-c", `head -c ${SIZE} /dev/zero | curl -sS -T - -X POST -H 'Expect:' http://127.0.0.1:8090/upload`], 120_000),
    );
    expect(r.code).toBe(0);
    const echo = JSON.parse(r.stdout) as Echo;
    expect(echo.bodyBytes).toBe(SIZE);
    console.log(`upload: baseline RSS ${(baseline / MB).toFixed(1)} MB, peak ${(peak / MB).toFixed(1)} MB`);
    expect(peak - baseline).toBeLessThan(RSS_BUDGET);
  });

  test("200 MB download arrives whole, memory bounded", async () => {
    const before = rss(daemon.proc.pid);
    const { result: r, peak } = await peakRss(daemon.proc.pid, () =>
      nsExec(NS, ["sh", "-c", `curl -sS http://127.0.0.1:8090/bytes?n=${SIZE} | wc -c`], 120_000),
    );
    expect(r.code).toBe(0);
    expect(Number(r.stdout.trim())).toBe(SIZE);
    console.log(`download: RSS before ${(before / MB).toFixed(1)} MB, peak ${(peak / MB).toFixed(1)} MB`);
    expect(peak - before).toBeLessThan(RSS_BUDGET);
  });
});
