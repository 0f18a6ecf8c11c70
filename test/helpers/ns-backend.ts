// A tenant's own service for ingress tests, run inside a namespace: `ip netns exec NS bun ns-backend.ts NAME PORT [CERT KEY]`.
// HTTP: answers every request with JSON {tenant, method, url, headers}; /ws upgrades to a WebSocket that echoes
// "NAME:<message>". With CERT and KEY it serves HTTPS instead (for sni:// ingress). Prints "ready" when listening.
import type { ServerWebSocket } from "bun";

const [name, port, cert, key] = process.argv.slice(2) as [string, string, string?, string?];

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(port),
  ...(cert && key ? { tls: { cert: Bun.file(cert), key: Bun.file(key) } } : {}),
  fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === "/ws" && srv.upgrade(req, { data: undefined })) return undefined;
    return Response.json({ tenant: name, method: req.method, url: req.url, headers: Object.fromEntries(req.headers) });
  },
  websocket: {
    message(ws: ServerWebSocket<unknown>, msg: string | Buffer) {
      ws.send(`${name}:${msg}`);
    },
  },
});
process.stdout.write(`ready ${server.port}\n`);
// Ends with its parent test (killed), or on its own after a bounded time.
setTimeout(() => process.exit(0), 120_000);
