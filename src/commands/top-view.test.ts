import { describe, expect, test } from "bun:test";
import type { StatsView, TenantStats } from "../admin/types.ts";
import { formatBytes, formatRate, formatTime, headerLine, isSortKey, renderTop, selectStats, sortTenants } from "./top-view.ts";

function tenant(name: string, t: Partial<TenantStats> = {}): TenantStats {
  return {
    name,
    state: "serving",
    requests_total: 0,
    errors_total: 0,
    bytes_in_total: 0,
    bytes_out_total: 0,
    open_connections: 0,
    requests_per_second: 0,
    errors_per_second: 0,
    bytes_per_second: 0,
    ...t,
  };
}

const TIME = new Date(2025, 5, 1, 12, 34, 56).getTime();

const SAMPLE: StatsView = {
  time: TIME,
  tenants: [
    tenant("acme", { requests_per_second: 1234, errors_per_second: 2, open_connections: 40, bytes_per_second: 3_400_000, requests_total: 90_000 }),
    tenant("globex", { requests_per_second: 12.5, errors_per_second: 0, open_connections: 3, bytes_per_second: 52_100, requests_total: 800 }),
    tenant("initech", { state: "waiting" }),
    tenant("umbrella", { requests_per_second: 310, errors_per_second: 41.5, open_connections: 7, bytes_per_second: 240, requests_total: 20_000, errors_total: 3000 }),
  ],
};

const names = (ts: TenantStats[]) => ts.map((t) => t.name);

describe("sortTenants", () => {
  test("busiest first by each key, name ascending for name", () => {
    expect(names(sortTenants(SAMPLE.tenants, "requests"))).toEqual(["acme", "umbrella", "globex", "initech"]);
    expect(names(sortTenants(SAMPLE.tenants, "errors"))).toEqual(["umbrella", "acme", "globex", "initech"]);
    expect(names(sortTenants(SAMPLE.tenants, "connections"))).toEqual(["acme", "umbrella", "globex", "initech"]);
    expect(names(sortTenants(SAMPLE.tenants, "bytes"))).toEqual(["acme", "globex", "umbrella", "initech"]);
    expect(names(sortTenants([...SAMPLE.tenants].reverse(), "name"))).toEqual(["acme", "globex", "initech", "umbrella"]);
  });

  test("equal rates: the larger total first, then the name", () => {
    const ts = [tenant("c"), tenant("b", { requests_total: 5 }), tenant("a")];
    expect(names(sortTenants(ts, "requests"))).toEqual(["b", "a", "c"]);
  });

  test("a copy: the input keeps its order", () => {
    const ts = [tenant("b"), tenant("a")];
    sortTenants(ts, "name");
    expect(names(ts)).toEqual(["b", "a"]);
  });

  test("sort keys", () => {
    for (const k of ["requests", "errors", "connections", "bytes", "name"]) expect(isSortKey(k)).toBe(true);
    expect(isSortKey("cpu")).toBe(false);
  });
});

describe("formats", () => {
  test("rates: integers and one decimal below 1000, then SI prefixes", () => {
    const cases: [number, string][] = [
      [0, "0"],
      [0.04, "0"],
      [0.5, "0.5"],
      [7, "7"],
      [12.34, "12.3"],
      [99.96, "100"],
      [310, "310"],
      [999, "999"],
      [999.6, "1.0k"],
      [1000, "1.0k"],
      [1234, "1.2k"],
      [12_345, "12.3k"],
      [123_456, "123k"],
      [999_960, "1.0M"],
      [3_100_000, "3.1M"],
      [2.5e9, "2.5G"],
      [-1, "0"],
      [Number.NaN, "0"],
    ];
    for (const [x, s] of cases) expect(`${x} → ${formatRate(x)}`).toBe(`${x} → ${s}`);
  });

  test("bytes per second in SI units", () => {
    const cases: [number, string][] = [
      [0, "0 B/s"],
      [12.7, "13 B/s"],
      [512, "512 B/s"],
      [1000, "1.0 kB/s"],
      [52_100, "52.1 kB/s"],
      [3_400_000, "3.4 MB/s"],
      [123_400_000, "123 MB/s"],
      [1.1e9, "1.1 GB/s"],
    ];
    for (const [x, s] of cases) expect(`${x} → ${formatBytes(x)}`).toBe(`${x} → ${s}`);
  });

  test("time is local, to the second", () => {
    expect(formatTime(TIME)).toBe("2025-06-01 12:34:56");
  });
});

describe("renderTop", () => {
  test("header with totals and time, titles, one aligned line per tenant, sorted", () => {
    expect(renderTop(SAMPLE, { sort: "requests" })).toEqual([
      "2025-06-01 12:34:56  4 tenants (3 serving, 1 waiting)  1.6k req/s  43.5 err/s  50 conns  3.5 MB/s  sort: requests",
      "TENANT    REQ/S  ERR/S  CONNS    BYTES/S  STATE",
      "acme       1.2k      2     40   3.4 MB/s  serving",
      "umbrella    310   41.5      7    240 B/s  serving",
      "globex     12.5      0      3  52.1 kB/s  serving",
      "initech       0      0      0      0 B/s  waiting",
    ]);
  });

  test("no tenants", () => {
    expect(renderTop({ time: TIME, tenants: [] }, { sort: "name" })).toEqual(["2025-06-01 12:34:56  0 tenants  0 req/s  0 err/s  0 conns  0 B/s  sort: name", "no tenants"]);
  });

  test("--limit keeps the first N and says how many more", () => {
    const lines = renderTop(SAMPLE, { sort: "errors", limit: 2 });
    expect(lines.slice(2).map((l) => l.split(" ")[0])).toEqual(["umbrella", "acme", "…"]);
    expect(lines.at(-1)).toBe("… 2 more");
  });

  test("the terminal's height: never more lines than rows, the rest counted", () => {
    for (let rows = 1; rows <= 8; rows++) {
      const lines = renderTop(SAMPLE, { sort: "requests", rows });
      expect(lines.length).toBeLessThanOrEqual(rows);
      if (rows >= 3 && rows < 6) expect(lines.at(-1)).toBe(`… ${4 - (rows - 3)} more`);
    }
    expect(renderTop(SAMPLE, { sort: "requests", rows: 6 })).toEqual(renderTop(SAMPLE, { sort: "requests" }));
    // --limit and the height together: whichever is smaller, and one line for the rest.
    expect(renderTop(SAMPLE, { sort: "requests", rows: 5, limit: 3 }).slice(2)).toEqual([
      "acme       1.2k      2     40   3.4 MB/s  serving",
      "umbrella    310   41.5      7    240 B/s  serving",
      "… 2 more",
    ]);
  });

  test("the terminal's width: long names are shortened before anything else, no line is wider", () => {
    const long = "a-very-long-tenant-name-that-goes-on-and-on-0123456789";
    const view: StatsView = { time: TIME, tenants: [tenant(long, { requests_per_second: 5 }), tenant("b")] };
    const lines = renderTop(view, { sort: "requests", columns: 60 });
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(60);
    expect(lines[2]).toMatch(/^a-very-long-tenant\S*…\s+5\s+0\s+0\s+0 B\/s\s+serving$/);
    expect(lines[2]!.length).toBe(60);
    expect(lines[3]).toMatch(/^b\s+0 .*serving$/);
    // Narrower than the figures: lines are cut.
    for (const l of renderTop(view, { sort: "requests", columns: 20 })) expect(l.length).toBeLessThanOrEqual(20);
  });

  test("no terminal codes in the output", () => {
    for (const l of renderTop(SAMPLE, { sort: "bytes", rows: 4, columns: 40 })) expect(l).not.toMatch(/\x1b/);
  });

  test("failed tenants are counted in the header", () => {
    const view: StatsView = { time: TIME, tenants: [tenant("a", { state: "failed" }), tenant("b")] };
    expect(headerLine(view, "name")).toContain("2 tenants (1 serving, 1 failed)");
    expect(headerLine({ time: TIME, tenants: [tenant("a")] }, "name")).toContain("1 tenant (1 serving)");
  });
});

describe("selectStats (--json)", () => {
  test("sorted as asked, cut at --limit, time kept", () => {
    const s = selectStats(SAMPLE, { sort: "bytes", limit: 2 });
    expect(s.time).toBe(TIME);
    expect(names(s.tenants)).toEqual(["acme", "globex"]);
    expect(names(selectStats(SAMPLE, { sort: "name" }).tenants)).toEqual(["acme", "globex", "initech", "umbrella"]);
  });
});
