// The byte-encoded access log writes exactly the lines the template strings it replaced wrote.
import { describe, expect, test } from "bun:test";
import { type AccessEntry, accessLog } from "./access-log.ts";

// The lines as they were written before (string templates and JSON.stringify), the reference.
const textLine = (e: AccessEntry, time: string) =>
  `${time} access ${e.direction ? `${e.direction} ` : ""}tenant=${e.tenant} ${e.method} ${JSON.stringify(e.path)} ${e.status} ${e.bytes ?? "-"} ${e.ms.toFixed(1)}ms${e.host === undefined ? "" : ` host=${e.host ? JSON.stringify(e.host) : "-"}`}\n`;
const jsonLine = (e: AccessEntry, time: string) => `${JSON.stringify({ time, type: "access", ...e, bytes: e.bytes ?? null, ms: Math.round(e.ms * 10) / 10 })}\n`;

const entry = (o: Partial<AccessEntry>): AccessEntry => ({ direction: undefined, tenant: "acme", host: undefined, method: "GET", path: "/", status: 200, bytes: 2, ms: 0.3, ...o });
const ENTRIES: AccessEntry[] = [
  entry({}),
  entry({ bytes: undefined, status: 502, ms: 0 }),
  entry({ bytes: 0, ms: 12 }),
  entry({ bytes: 123456789012345, ms: 98765.44 }),
  entry({ path: '/a?b="c"&d=\\e', method: "DELETE" }),
  ...[0.05, 0.15, 0.25, 0.35, 1.45, 2.675, 9.95, 99.95, 1234.55, 0.04999, 7.000001].map((ms) => entry({ ms })),
  entry({ direction: "ingress", tenant: "-", host: "", status: 404 }),
  entry({ direction: "ingress", host: "b\u00e9\u00ff.example:8080\t\u0001\u007f" }),
  entry({ tenant: "t\u00e9n\u4e00nt\ud83d\ude00", host: "lone\ud800x\udc00", path: "/\u001f\b\f\n\r" }),
  entry({ method: "M-SEARCH", path: "*", status: 100, bytes: 9 }),
];

function written(format: "text" | "json"): { out: string; times: string[] } {
  const chunks: Uint8Array[] = [];
  const log = accessLog(format, (c) => chunks.push(c));
  for (const e of ENTRIES) log(e);
  log.flush();
  const out = Buffer.concat(chunks).toString("utf8");
  const times = [...out.matchAll(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\dZ/g)].map((m) => m[0]);
  return { out, times };
}

describe("access log", () => {
  test("text lines are byte for byte those of the template strings", () => {
    const { out, times } = written("text");
    expect(times.length).toBe(ENTRIES.length);
    expect(out).toBe(ENTRIES.map((e, i) => textLine(e, times[i]!)).join(""));
  });

  test("JSON lines are byte for byte those of JSON.stringify", () => {
    const { out, times } = written("json");
    expect(times.length).toBe(ENTRIES.length);
    expect(out).toBe(ENTRIES.map((e, i) => jsonLine(e, times[i]!)).join(""));
  });

  test("batches of more than 64 kB are handed over at once, and a long entry grows the buffer", () => {
    const chunks: Uint8Array[] = [];
    const log = accessLog("text", (c) => chunks.push(c));
    const long = entry({ path: `/${"\u0001".repeat(100_000)}` });
    log(long);
    expect(chunks.length).toBe(1);
    for (let i = 0; i < 2000; i++) log(entry({}));
    expect(chunks.length).toBeGreaterThan(1);
    log.flush();
    const lines = Buffer.concat(chunks).toString("utf8").split("\n");
    expect(lines.length).toBe(2002);
    expect(lines[0]!.length).toBeGreaterThan(600_000);
  });
});
