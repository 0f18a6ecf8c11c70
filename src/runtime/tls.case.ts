// The shared runtime cases of https:// listeners and TLS dialers (see net.case.ts, which registers them too).
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { type Accepted, bytes, dialed, listen, selfSigned, send, type TestFn, until } from "./case-kit.ts";
import type { Runtime } from "./types.ts";

const OPENSSL = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "pipe" });
    return true;
  } catch {
    return false;
  }
})();

export function tlsCases(test: TestFn, rt: Runtime): void {
  const local = (port: number, more: object = {}) => ({ host: "127.0.0.1", port, ...more });
  const pong = (a: Accepted) => ({ onClientData: () => void a.sock.write(bytes("pong")) });

  const noTls = OPENSSL ? undefined : "openssl is not installed (it makes the test certificate)";

  test(
    "https:// listener: the handshake comes before the data, the peer says tls, a dial trusting the certificate (ca) gets through",
    async () => {
      const tls = selfSigned()!;
      const srv = await listen(rt, { tls, serve: pong });
      try {
        const c = await dialed(rt, local(srv.port, { tls: true, ca: tls.cert }));
        assert.ok(c.sock, `dial failed: ${c.seen.error}`);
        await send(c, "ping");
        await until("the answer", () => c.seen.text() === "pong");
        const a = srv.accepted[0]!;
        assert.equal(a.peer.tls, true);
        assert.deepEqual(a.seen.events.slice(0, 2), ["handshake", "data"]);
        // Deno exposes no negotiated version: "" is the documented answer there.
        if (rt.name === "bun") assert.match(rt.tlsVersionOf(a.sock), /^TLSv1\.[23]$/);
        else assert.equal(rt.tlsVersionOf(a.sock), "");
      } finally {
        srv.listener.stop(true);
      }
    },
    noTls,
  );

  test(
    "a dial that does not trust the certificate closes with a TLS reason; upstream_insecure (insecure) gets through",
    async () => {
      const tls = selfSigned()!;
      const srv = await listen(rt, { tls, serve: pong });
      try {
        const refused = await dialed(rt, local(srv.port, { tls: true }));
        await until("the close", () => refused.seen.count("close") > 0);
        assert.match(refused.seen.error ?? "", /^TLS: ./);
        const c = await dialed(rt, local(srv.port, { tls: true, insecure: true }));
        assert.ok(c.sock, `insecure dial failed: ${c.seen.error}`);
        await send(c, "ping");
        await until("the answer", () => c.seen.text() === "pong");
      } finally {
        srv.listener.stop(true);
      }
    },
    noTls,
  );

  test(
    "a client that does not speak TLS to an https:// listener is onHandshakeFailed saying so, then close, and no data",
    async () => {
      const srv = await listen(rt, { tls: selfSigned()! });
      try {
        const c = await dialed(rt, local(srv.port));
        await send(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        await until("the server's close", () => srv.accepted[0]?.seen.count("close") === 1);
        assert.deepEqual(srv.accepted[0]!.seen.events, ["handshake-failed", "close"]);
        // BoringSSL recognises an HTTP method in the first bytes; rustls only sees that they are not a TLS record.
        const why = srv.accepted[0]!.seen.error ?? "";
        if (rt.name === "bun") assert.equal(why, "the client sent plain HTTP (HTTP_REQUEST)");
        else assert.equal(why, "the client's first bytes are not TLS: plain HTTP or another protocol (received corrupt message of type InvalidContentType)");
      } finally {
        srv.listener.stop(true);
      }
    },
    noTls,
  );
}
