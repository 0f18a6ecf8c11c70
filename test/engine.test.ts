// The data path on real namespaces, tried as a hostile tenant would: each of the ten failures of the Bun.serve+fetch path, WebSocket, slowloris.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { daemonDir, startNsproxy, type Running } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, nsExec, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type RawUpstream, startRawUpstream } from "./helpers/raw-upstream.ts";

const prefix = uniquePrefix("eng");
const A = `${prefix}a`;
const B = `${prefix}b`;
const W = `${prefix}w`;
const CLIENT = [process.execPath, `${import.meta.dir}/helpers/ns-client.ts`];
const PORT = 8090;

/** Send raw bytes from inside `ns` to the tenant listener; the reply as latin1 text. */
async function raw(ns: string, bytes: string, opts: { idleMs?: number; pauseMs?: number; halfClose?: boolean } = {}): Promise<{ reply: string; closed: boolean }> {
  const r = await nsExec(ns, [...CLIENT, "send", "127.0.0.1", String(PORT), Buffer.from(bytes, "latin1").toString("base64"), String(opts.idleMs ?? 400), String(opts.pauseMs ?? 0), opts.halfClose ? "halfclose" : "full"]);
  if (r.code !== 0) throw new Error(`ns-client failed: ${r.stderr}`);
  const o = JSON.parse(r.stdout) as { reply: string; closed: boolean };
  return { reply: Buffer.from(o.reply, "base64").toString("latin1"), closed: o.closed };
}

const stamp = (tenant: string, host = `127.0.0.1:${PORT}`) =>
  `X-Nsproxy-Tenant: ${tenant}\r\nX-Forwarded-Proto: http\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Host: ${host}\r\n\r\n`;

describe.skipIf(Boolean(skipReason))("engine on real namespaces", () => {
  let upstream: RawUpstream;
  let wsUpstream: ReturnType<typeof Bun.serve>;
  const wsUpgrades: Record<string, string>[] = [];
  let daemon: Running;

  beforeAll(async () => {
    addNetns(A);
    addNetns(B);
    addNetns(W);
    upstream = startRawUpstream((req) => {
      if (req.startsWith("TRACE ")) return `HTTP/1.1 200 OK\r\nContent-Type: message/http\r\nContent-Length: ${req.length}\r\n\r\n${req}`;
      if (req.includes(" /chunked ")) return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
      if (req.includes(" /chunked-slow ")) return ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n5\r\nhello\r\n", "10\r\n0123456789abcdef\r\n", "0\r\nX-Trailer: t\r\n\r\n"];
      if (req.includes(" /close-me ")) return null;
      const path = req.slice(0, req.indexOf("\r\n")).split(" ")[1]!;
      return `HTTP/1.1 200 OK\r\nContent-Length: ${path.length}\r\n\r\n${path}`;
    });
    wsUpstream = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req, server) {
        wsUpgrades.push(Object.fromEntries(req.headers));
        return server.upgrade(req, { data: undefined }) ? undefined : new Response("not a websocket", { status: 400 });
      },
      websocket: { message: (ws, m) => void ws.send(m) },
    });
    const dir = daemonDir();
    const config = `${dir}/nsproxy.toml`;
    writeFileSync(
      config,
      `[defaults]\nlisten = "127.0.0.1:${PORT}"\nupstream = "http://127.0.0.1:${upstream.port}"\n\n` +
        `[tenants."${A}"]\nnetns = "${A}"\n\n[tenants."${B}"]\nnetns = "${B}"\n\n` +
        `[tenants."${W}"]\nnetns = "${W}"\nupstream = "http://127.0.0.1:${wsUpstream.port}"\n`,
    );
    daemon = startNsproxy(["run", "--config", config, "--workers", "2", "--request-timeout", "1s", "--upstream-timeout", "2s"]);
    await daemon.waitFor(/attached 3\/3 tenants/);
  });

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    upstream?.stop();
    wsUpstream?.stop(true);
    cleanupNetns(prefix);
  });

  test("nothing is added or dropped: the upstream gets the request as sent plus the stamp; the response comes back as sent", async () => {
    const before = upstream.requests.length;
    const r = await raw(A, `GET /chunked HTTP/1.1\r\nHost: 127.0.0.1:${PORT}\r\n\r\n`);
    expect(upstream.requests.slice(before)).toEqual([`GET /chunked HTTP/1.1\r\nHost: 127.0.0.1:${PORT}\r\n${stamp(A)}`]);
    // No Content-Type, no User-Agent or Accept invented; chunked stays chunked.
    expect(r.reply).toBe("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  });

  test("pipelined requests are all answered, in order", async () => {
    const r = await raw(A, `GET /p1 HTTP/1.1\r\nHost: h\r\n\r\nGET /p2 HTTP/1.1\r\nHost: h\r\n\r\nGET /p3 HTTP/1.1\r\nHost: h\r\n\r\n`);
    expect(r.reply).toBe(["/p1", "/p2", "/p3"].map((p) => `HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n${p}`).join(""));
  });

  test("an HTTP/1.0 client reads a chunked answer as plain bytes: a Content-Length when it came whole, else to the close", async () => {
    // RFC 9112 §6.1: no chunked framing for a 1.0 client. All of it here with the head: framed by a length, keep-alive kept.
    const whole = await raw(A, "GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    expect(whole.reply).toBe("HTTP/1.1 200 OK\r\nX-Up: 1\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc");
    expect(whole.closed).toBe(false);
    // Still arriving (three pieces 50 ms apart): the chunks' data only, no trailer, and the close ends it.
    const slow = await raw(A, "GET /chunked-slow HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", { idleMs: 2000 });
    expect(slow.reply).toBe("HTTP/1.1 200 OK\r\nX-Up: 1\r\nConnection: close\r\n\r\nhello0123456789abcdef");
    expect(slow.closed).toBe(true);
    // An HTTP/1.1 client gets the same answer chunked, as the upstream sent it.
    const ok11 = await raw(A, "GET /chunked-slow HTTP/1.1\r\nHost: h\r\n\r\n", { idleMs: 1000 });
    expect(ok11.reply).toBe("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n5\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n");
  });

  test("an upstream that closes without answering: the client gets its 502, then two 200s on the same connection", async () => {
    const before = upstream.requests.length;
    const sent = ["POST /close-me HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi", "GET /n1 HTTP/1.1\r\nHost: h\r\n\r\n", "GET /n2 HTTP/1.1\r\nHost: h\r\n\r\n"];
    const r = await nsExec(A, [...CLIENT, "each", "127.0.0.1", String(PORT), ...sent.map((x) => Buffer.from(x, "latin1").toString("base64"))]);
    if (r.code !== 0) throw new Error(`ns-client failed: ${r.stderr}`);
    const o = JSON.parse(r.stdout) as { replies: string[]; closed: boolean };
    expect(o.replies.map((x) => x.slice(0, x.indexOf("\r\n")))).toEqual(["HTTP/1.1 502 Bad Gateway", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]);
    expect(o.replies[0]).toContain("connection closed before a response");
    expect(o.replies[0]).not.toContain("Connection: close");
    expect(o.replies.slice(1).map((x) => x.slice(x.indexOf("\r\n\r\n") + 4))).toEqual(["/n1", "/n2"]);
    expect(o.closed).toBe(false);
    // A request with a body is never sent twice.
    expect(upstream.requests.slice(before).filter((x) => x.startsWith("POST /close-me ")).length).toBe(1);
  });

  test("a client that half-closes (FIN) after pipelined requests gets every answer, then the close", async () => {
    const r = await raw(A, "GET /h1 HTTP/1.1\r\nHost: h\r\n\r\nGET /h2 HTTP/1.1\r\nHost: h\r\n\r\n", { halfClose: true, idleMs: 1500 });
    expect(r.reply).toBe("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n/h1HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n/h2");
    expect(r.closed).toBe(true);
  });

  test("a GET body reaches the upstream, and a TRACE response body reaches the client", async () => {
    const before = upstream.requests.length;
    const r = await raw(A, `GET /with-body HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello`);
    expect(upstream.requests[before]).toEndWith("\r\n\r\nhello");
    expect(r.reply).toEndWith("/with-body");
    const t = await raw(A, `TRACE /t HTTP/1.1\r\nHost: h\r\n\r\n`);
    expect(t.reply).toContain("\r\nContent-Type: message/http\r\n");
    expect(t.reply).toContain(`TRACE /t HTTP/1.1\r\nHost: h\r\n${stamp(A, "h")}`);
  });

  test("CONNECT gets 405; two Host fields get 400; nothing reaches the upstream", async () => {
    const before = upstream.requests.length;
    const c = await raw(A, "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n");
    expect(c.reply).toStartWith("HTTP/1.1 405 Method Not Allowed\r\n");
    expect(c.closed).toBe(true);
    const h = await raw(A, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    expect(h.reply).toStartWith("HTTP/1.1 400 Bad Request\r\n");
    expect(h.reply).toContain("more than one Host field");
    expect(upstream.requests.length).toBe(before);
  });

  test("the path goes upstream exactly as written, whatever Host says (missing, empty, odd); absolute-form only with a matching Host", async () => {
    const cases: [string, string][] = [
      ["GET //a/../b?x=%2F&y HTTP/1.0\r\n\r\n", "GET //a/../b?x=%2F&y HTTP/1.0\r\n"],
      ["GET /p?q HTTP/1.1\r\nHost:\r\n\r\n", "GET /p?q HTTP/1.1\r\nHost:\r\n"],
      ["GET /p HTTP/1.1\r\nHost: other.example:99\r\n\r\n", "GET /p HTTP/1.1\r\nHost: other.example:99\r\n"],
      ["GET http://elsewhere.example/abs?q=1 HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n", "GET /abs?q=1 HTTP/1.1\r\nHost: elsewhere.example\r\n"],
    ];
    for (const [send, upstreamStart] of cases) {
      const before = upstream.requests.length;
      await raw(A, send);
      expect(upstream.requests[before]).toStartWith(upstreamStart);
    }
    const bad = await raw(A, "GET /p HTTP/1.1\r\nHost: a b\r\n\r\n");
    expect(bad.reply).toStartWith("HTTP/1.1 400 ");
    // An absolute-form target names the host itself: a Host that says otherwise is refused, not forwarded.
    const other = await raw(A, "GET http://elsewhere.example/abs HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(other.reply).toStartWith("HTTP/1.1 400 ");
    expect(other.reply).toContain("Host does not match the authority");
  });

  test("look-alikes of the stamp (X_Nsproxy_Tenant, x-nsproxy_tenant) and of X-Forwarded-* never reach the upstream", async () => {
    const before = upstream.requests.length;
    await raw(A, `GET /la HTTP/1.1\r\nHost: h\r\nX_Nsproxy_Tenant: ${B}\r\nx-nsproxy_tenant: root\r\nX_Forwarded_For: 6.6.6.6\r\nX-Other_Name: kept\r\n\r\n`);
    const got = upstream.requests[before]!;
    expect(got).toBe(`GET /la HTTP/1.1\r\nHost: h\r\nX-Other_Name: kept\r\n${stamp(A, "h")}`);
  });

  test("WebSocket: upgrade, echo both ways through the proxy; the upstream saw the stamp on the upgrade request", async () => {
    const r = await nsExec(W, [...CLIENT, "ws", `ws://127.0.0.1:${PORT}/socket`]);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual({ got: ["one", "two", "xx70000"] });
    expect(wsUpgrades.at(-1)?.["x-nsproxy-tenant"]).toBe(W);
    expect(wsUpgrades.at(-1)?.upgrade).toBe("websocket");
  });

  test("slowloris: a head not complete within request_timeout gets 408 and the connection is closed", async () => {
    const r = await raw(B, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n", { pauseMs: 1800, idleMs: 300 });
    expect(r.reply).toStartWith("HTTP/1.1 408 Request Timeout\r\n");
    expect(r.closed).toBe(true);
  });

  test("noisy neighbour: 300 stalled uploads on one tenant do not hold up another tenant's GETs", async () => {
    const head = `POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n`;
    const holder = Bun.spawn(["ip", "netns", "exec", A, ...CLIENT, "hold", "127.0.0.1", String(PORT), "300", "6000", head], { stdout: "pipe", stderr: "pipe" });
    try {
      // Wait until the 300 uploads are open and stalled.
      const reader = holder.stderr.getReader();
      let err = "";
      while (!err.includes("HOLDING")) {
        const { value, done } = await reader.read();
        if (done) break;
        err += Buffer.from(value).toString();
      }
      expect(err).toContain("HOLDING");
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => curlIn(B, `http://127.0.0.1:${PORT}/b${i}`)));
      expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
      // The uploads were still being held while B was served: the holder had not finished.
      expect(holder.exitCode).toBeNull();
      const out = JSON.parse(await new Response(holder.stdout).text()) as { open: number; closedEarly: number };
      expect(out.open).toBe(300);
    } finally {
      holder.kill("SIGKILL");
    }
  });
});
