// A host-side upstream for tests, on 127.0.0.1: echoes what it received, and can be slow or send bulk data.
import type { Server } from "bun";

export interface Echo {
  method: string;
  url: string;
  headers: Record<string, string>;
  /** Every value of the tenant header as received, to prove no client copy slipped through. */
  rawTenantHeaders: string[];
  bodyBytes: number;
}

/**
 * Routes: `/slow?ms=N` answers after N ms; `/bytes?n=N` streams N bytes; anything else echoes as JSON
 * (a request body is consumed and counted as it streams, never buffered).
 */
export function startUpstream(tenantHeader = "x-nsproxy-tenant"): Server<unknown> {
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 60,
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    async fetch(req) {
      const url = new URL(req.url);
      if (url.pathname === "/slow") {
        await Bun.sleep(Number(url.searchParams.get("ms") ?? 1000));
        return new Response("slow done\n");
      }
      if (url.pathname === "/bytes") return new Response(bulk(Number(url.searchParams.get("n") ?? 0)));
      let bodyBytes = 0;
      if (req.body) for await (const chunk of req.body) bodyBytes += chunk.byteLength;
      const echo: Echo = {
        method: req.method,
        url: req.url,
        headers: Object.fromEntries(req.headers),
        rawTenantHeaders: req.headers.get(tenantHeader)?.split(",").map((s) => s.trim()) ?? [],
        bodyBytes,
      };
      return Response.json(echo);
    },
  });
}

/** A stream of n bytes in 64 kB chunks, produced as the reader pulls. */
export function bulk(n: number): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(65536).fill(120);
  let left = n;
  return new ReadableStream({
    pull(ctrl) {
      if (left <= 0) return ctrl.close();
      const c = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= c.length;
      ctrl.enqueue(c);
    },
  });
}
