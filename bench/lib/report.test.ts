// The bench table compares nsproxy with the HAProxy row of the same N and the same access-log setting.
import { expect, test } from "bun:test";
import { markdown, type Row } from "./report.ts";
import type { WrkResult } from "./wrk.ts";

const run = (rps: number, cpu: number): WrkResult => ({ rps, p50Ms: 1, p99Ms: 2, requests: rps, errors: 0, socket: { connect: 0, read: 0, write: 0, timeout: 0 }, non2xx: 0, maxMs: 2, cpuUsPerReq: cpu });
const row = (proxy: Row["kind"], log: boolean, rps: number, cpu: number): Row => ({
  n: 1, proxy, kind: proxy, log, pair: log ? "log on" : "log off", singles: [run(rps, cpu)], spreads: [], spreadK: 0, rssKb: 1024, startupMs: 1, liveAdd: "—", check: "",
});

test("req/s and CPU ratios pair log off with log off and log on with log on", () => {
  const rows = [row("nsproxy", false, 50_000, 20), row("HAProxy", false, 40_000, 25), row("nsproxy", true, 45_000, 22), row("HAProxy", true, 30_000, 33)];
  const md = markdown({ command: "c", date: "d", versions: { nsproxy: "n", haproxy: "h", wrk: "w", bun: "b" }, opts: { durationS: 1, rounds: 1, warmupS: 1 }, rows, notes: [], elapsedS: 1 });
  const cells = (proxy: string, log: string) => md.split("\n").find((l) => l.startsWith(`| 1 | ${proxy} | ${log} |`))!.split("|").map((c) => c.trim());
  // | N | proxy | log | req/s | × | CPU | × |
  expect(cells("nsproxy", "off").slice(4, 8)).toEqual(["50,000", "1.25", "20.0", "0.80"]);
  expect(cells("nsproxy", "on").slice(4, 8)).toEqual(["45,000", "1.50", "22.0", "0.67"]);
  expect(cells("HAProxy", "on")[5]).toBe("");
});
