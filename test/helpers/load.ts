// A bounded HTTP load from inside a namespace: keep-alive requests until a count or a time limit, then figures.
import { nsExec } from "./netns.ts";

export interface LoadResult {
  requests: number;
  ok: number;
  /** Responses other than 200, by status. */
  bad: Record<string, number>;
  /** Requests that got no response at all, by error message. */
  errors: Record<string, number>;
  /** What the upstream saw as the tenant, by value: proves every answer came through the right tenant. */
  tenants: Record<string, number>;
  /** When the load began and ended (Date.now()), to show what happened while it ran. */
  startedAt: number;
  endedAt: number;
}

/**
 * Runs `concurrency` loops of fetch() inside `ns` against `url` (an address inside that namespace)
 * until `maxRequests` are done or `maxMs` has passed. Loopback only; always bounded in count and time.
 */
export async function loadIn(ns: string, url: string, opts: { concurrency?: number; maxRequests?: number; maxMs?: number } = {}): Promise<LoadResult> {
  const { concurrency = 4, maxRequests = 20_000, maxMs = 10_000 } = opts;
  const script = `
    const url = ${JSON.stringify(url)}, until = Date.now() + ${maxMs}, max = ${maxRequests};
    const r = { requests: 0, ok: 0, bad: {}, errors: {}, tenants: {}, startedAt: Date.now(), endedAt: 0 };
    const bump = (o, k) => { o[k] = (o[k] ?? 0) + 1; };
    async function loop() {
      while (r.requests < max && Date.now() < until) {
        r.requests++;
        try {
          const res = await fetch(url);
          const body = await res.json().catch(() => ({}));
          if (res.status === 200) r.ok++; else bump(r.bad, String(res.status));
          bump(r.tenants, body?.headers?.["x-nsproxy-tenant"] ?? "?");
        } catch (e) { bump(r.errors, String(e?.code ?? e?.message ?? e)); }
      }
    }
    await Promise.all(Array.from({ length: ${concurrency} }, loop));
    r.endedAt = Date.now();
    console.log(JSON.stringify(r));`;
  const res = await nsExec(ns, [process.execPath, "-e", script], maxMs + 20_000);
  if (res.code !== 0) throw new Error(`load in ${ns} failed (${res.code}): ${res.stderr}`);
  return JSON.parse(res.stdout.trim().split("\n").at(-1)!) as LoadResult;
}
