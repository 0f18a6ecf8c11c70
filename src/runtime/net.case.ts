// What every runtime adapter promises the engine, as cases run against each (bun/net.test.ts, deno/net.test.ts):
// listen and dial, backpressure, pause, half-close, close order, refusals, adopted fds; TLS in tls.case.ts. Loopback only.
import { strict as assert } from "node:assert";
import { existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { type Accepted, bytes, dialed, freePort, join, listen, pattern, type Progress, sameBytes, type Server, send, sleep, type TestFn, tempDir, until, writeAll } from "./case-kit.ts";
import { tlsCases } from "./tls.case.ts";
import type { Runtime } from "./types.ts";

export function netCases(test: TestFn, rt: Runtime): void {
  const local = (port: number, more: object = {}) => ({ host: "127.0.0.1", port, ...more });

  test("an accepted connection reports its peer, and bytes go both ways", async () => {
    const srv = await listen(rt, { serve: (a) => ({ onClientData: (d) => void a.sock.write(bytes(`pong:${new TextDecoder().decode(d)}`)) }) });
    try {
      const c = await dialed(rt, local(srv.port));
      assert.ok(c.sock, `dial failed: ${c.seen.error}`);
      await send(c, "ping");
      await until("the answer", () => c.seen.text() === "pong:ping");
      const { peer } = srv.accepted[0]!;
      assert.deepEqual({ ...peer, remotePort: 0 }, { remoteAddress: "127.0.0.1", remotePort: 0, localAddress: "127.0.0.1", localPort: srv.port, tls: false });
      assert.ok(peer.remotePort > 0 && peer.remotePort !== srv.port);
    } finally {
      srv.listener.stop(true);
    }
  });

  // Both directions: the engine writes requests to dialed upstreams and answers to accepted clients.
  for (const writer of ["dialer", "accepted"] as const) {
    test(`write() on the ${writer} side takes what it can and the rest goes after drain; a paused reader is handed nothing; buffers are never reused`, async () => {
      const total = 32 * 1024 * 1024;
      const srv = await listen(rt, { serve: (a) => void (writer === "dialer" && a.sock.pause()) });
      try {
        const c = await dialed(rt, local(srv.port));
        if (writer === "accepted") c.sock!.pause();
        await until("the accept", () => srv.accepted.length === 1);
        const a = srv.accepted[0]!;
        const [from, to] = writer === "dialer" ? [c, a] : [a, c];
        const progress: Progress = { written: 0, short: 0 };
        const writing = writeAll(from.sock!, from.seen, pattern(total), progress);
        await until("a short write", () => progress.short > 0);
        await sleep(300);
        assert.equal(to.seen.length, 0, "a paused socket delivered data");
        assert.ok(progress.written < total, "every byte was taken while the reader was paused");
        to.sock!.resume();
        await writing;
        await until("every byte", () => to.seen.length >= total, 30_000);
        // The chunks were kept as delivered: a buffer the runtime reused would have changed under them.
        assert.ok(sameBytes(join(to.seen.chunks), pattern(total)), "the bytes that arrived differ from those sent");
        assert.ok(from.seen.count("drain") >= progress.short, "a short write was not followed by drain");
      } finally {
        srv.listener.stop(true);
      }
    });
  }

  test(
    "write() is done with a buffer when it returns (writeCopies): one buffer written over after every write, short writes included, and the peer gets what it held then",
    async () => {
      const total = 8 * 1024 * 1024;
      const want = pattern(total);
      const srv = await listen(rt, { serve: (a) => void a.sock.pause() });
      try {
        const c = await dialed(rt, local(srv.port));
        await until("the accept", () => srv.accepted.length === 1);
        const a = srv.accepted[0]!;
        // As the engine writes its request heads: the same buffer each time, changed as soon as write() returns.
        const buf = new Uint8Array(64 * 1024);
        let at = 0;
        let short = 0;
        while (at < total) {
          const piece = buf.subarray(0, Math.min(buf.length, total - at));
          piece.set(want.subarray(at, at + piece.length));
          const drained = c.seen.next("drain");
          const n = Math.max(0, c.sock!.write(piece));
          at += n;
          buf.fill(0xee);
          if (n < piece.length) {
            if (short++ === 0) a.sock.resume();
            await drained;
          }
        }
        await until("every byte", () => a.seen.length >= total, 30_000);
        assert.ok(short > 0, "no short write: the kernel took everything");
        assert.ok(sameBytes(join(a.seen.chunks), want), "the peer got bytes written over after write() returned");
      } finally {
        srv.listener.stop(true);
      }
    },
    rt.writeCopies ? undefined : "this runtime's write() keeps the buffer itself (writeCopies false): the engine gives it a new one per request head",
  );

  test("pause() holds data until resume(), and resume() delivers nothing from inside the call", async () => {
    const srv = await listen(rt);
    try {
      const c = await dialed(rt, local(srv.port));
      await send(c, "a");
      await until("the first byte", () => srv.accepted[0]?.seen.text() === "a");
      const a = srv.accepted[0]!;
      a.sock.pause();
      await send(c, "b");
      await sleep(200);
      assert.equal(a.seen.text(), "a", "data arrived while paused");
      const before = a.seen.events.length;
      a.sock.resume();
      assert.equal(a.seen.events.length, before, "resume() called back from inside the call");
      await until("the held byte", () => a.seen.text() === "ab");
    } finally {
      srv.listener.stop(true);
    }
  });

  test("a client's FIN is onClientEnd after its data, and the answer still reaches it (half-close)", async () => {
    // The answer comes later, as an upstream's would: the client's FIN must not have closed the socket meanwhile.
    const answer = (a: Accepted) => setTimeout(() => (a.sock.write(bytes("resp")), a.sock.end()), 50);
    const srv = await listen(rt, { serve: (a) => ({ onClientEnd: () => void answer(a) }) });
    try {
      const c = await dialed(rt, local(srv.port, { halfOpen: true }));
      await send(c, "req");
      c.sock!.shutdown!();
      await until("the answer and the close", () => c.seen.count("close") > 0);
      assert.equal(c.seen.text(), "resp");
      const s = srv.accepted[0]!.seen;
      await until("the server's close", () => s.count("close") === 1);
      assert.equal(s.text(), "req");
      assert.deepEqual(
        s.events.filter((e) => e !== "data" && e !== "drain"),
        ["end", "close"],
      );
      assert.ok(s.events.lastIndexOf("data") < s.events.indexOf("end"), "end before the last data");
    } finally {
      srv.listener.stop(true);
    }
  });

  test("shutdown() sends FIN and keeps reading; a halfOpen dialer gets onEnd and may still write", async () => {
    const srv = await listen(rt, { serve: (a) => (a.sock.write(bytes("a")), a.sock.shutdown!()) });
    try {
      const c = await dialed(rt, local(srv.port, { halfOpen: true }));
      await until("the upstream's FIN", () => c.seen.count("end") === 1);
      assert.equal(c.seen.text(), "a");
      assert.equal(c.seen.count("close"), 0, "closed on the upstream's FIN despite halfOpen");
      await send(c, "b");
      const s = srv.accepted[0]!.seen;
      await until("bytes written after the upstream's FIN", () => s.text() === "b");
      c.sock!.end();
      await until("both closes", () => s.count("close") === 1 && c.seen.count("close") > 0);
      // drain may come any time (Bun reports one after the first write): it says nothing about the order.
      assert.deepEqual(
        c.seen.events.filter((e) => e !== "drain"),
        ["open", "data", "end", "close"],
      );
    } finally {
      srv.listener.stop(true);
    }
  });

  test("end() sends what was written, then FIN; the dialer gets every byte and a close without reason; the sink hears close once", async () => {
    const body = pattern(1000);
    let took = -1;
    // Not inside accept(): a socket ended there may report its close before the sink is in place (a refusal's case).
    const srv = await listen(rt, { serve: (a) => ({ onClientData: () => ((took = a.sock.write(body)), a.sock.end()) }) });
    try {
      const c = await dialed(rt, local(srv.port));
      await send(c, "go");
      await until("the close", () => c.seen.count("close") > 0);
      assert.equal(took, body.length);
      assert.ok(sameBytes(join(c.seen.chunks), body));
      assert.equal(c.seen.error, undefined);
      assert.equal(c.seen.count("end"), 0, "onEnd without halfOpen");
      const s = srv.accepted[0]!.seen;
      await until("the server's close", () => s.count("close") === 1);
      await sleep(50);
      assert.equal(s.count("close"), 1);
    } finally {
      srv.listener.stop(true);
    }
  });

  test("terminate() reports close from inside the call, once, and the peer sees the close", async () => {
    let closedInside: boolean | undefined;
    const srv = await listen(rt, {
      serve: (a) => ({
        onClientData: () => {
          a.sock.terminate();
          closedInside = a.seen.count("close") === 1;
        },
      }),
    });
    try {
      const c = await dialed(rt, local(srv.port));
      await send(c, "x");
      await until("the dialer's close", () => c.seen.count("close") > 0);
      assert.equal(closedInside, true, "close was not reported inside terminate()");
      await sleep(50);
      assert.equal(srv.accepted[0]!.seen.count("close"), 1);
    } finally {
      srv.listener.stop(true);
    }
  });

  test("a connection refused inside accept() gets what was written before end(); one terminated there just closes", async () => {
    const srv = await listen(rt, { refuse: (sock) => (sock.write(bytes("busy\n")), sock.end()) });
    const cut = await listen(rt, { refuse: (sock) => sock.terminate() });
    try {
      const c = await dialed(rt, local(srv.port));
      await until("the refusal", () => c.seen.count("close") > 0);
      assert.equal(c.seen.text(), "busy\n");
      const d = await dialed(rt, local(cut.port));
      await until("the cut", () => d.seen.count("close") > 0);
      assert.equal(d.seen.text(), "");
      assert.equal(srv.accepted.length + cut.accepted.length, 2);
    } finally {
      srv.listener.stop(true);
      cut.listener.stop(true);
    }
  });

  test("stop(false) stops accepting and keeps open connections; stop(true) closes them", async () => {
    const srv = await listen(rt);
    try {
      const c = await dialed(rt, local(srv.port));
      await until("the accept", () => srv.accepted.length === 1);
      srv.listener.stop(false);
      const late = await dialed(rt, local(srv.port));
      assert.equal(late.sock, undefined, "a connection was accepted after stop(false)");
      await send(c, "still here");
      const s = srv.accepted[0]!.seen;
      await until("data on the kept connection", () => s.text() === "still here");
      srv.listener.stop(true);
      await until("the kept connection's close", () => c.seen.count("close") > 0 && s.count("close") === 1);
    } finally {
      srv.listener.stop(true);
    }
  });

  test("two listeners share one port (SO_REUSEPORT, as every worker binds each tenant address)", async () => {
    const one = await listen(rt);
    let two: Server | undefined;
    try {
      two = await listen(rt, { port: one.port });
      for (let i = 0; i < 4; i++) assert.ok((await dialed(rt, local(one.port))).sock);
      await until("four accepts", () => one.accepted.length + two!.accepted.length === 4);
    } finally {
      one.listener.stop(true);
      two?.listener.stop(true);
    }
  });

  test("a failed connect is a close with the reason: refused, or a unix socket that is missing", async () => {
    const refused = await dialed(rt, local(await freePort()));
    assert.deepEqual([refused.sock, refused.seen.error], [undefined, "connection refused"]);
    const missing = await dialed(rt, { unix: `${tmpdir()}/nsproxy-runtime-case-${process.pid}-missing.sock` });
    assert.deepEqual([missing.sock, missing.seen.error], [undefined, "cannot connect (socket missing or unreachable)"]);
  });

  test("serveHttp on a unix socket answers fetchUnix and dial({ unix }); stop() removes the socket", async () => {
    const dir = tempDir();
    const path = `${dir}/admin.sock`;
    try {
      const server = rt.serveHttp({ unix: path }, (req) => new Response(`ok ${new URL(req.url).pathname}`));
      try {
        const res = await rt.fetchUnix(path, "http://localhost/a");
        assert.equal(await res.text(), "ok /a");
        const c = await dialed(rt, { unix: path });
        await send(c, "GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        await until("the answer", () => c.seen.count("close") > 0);
        assert.match(c.seen.text(), /^HTTP\/1\.1 200 [^]*ok \/b$/);
      } finally {
        await server.stop(true);
      }
      assert.equal(existsSync(path), false, "stop() left the socket file");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  tlsCases(test, rt);

  test(
    "dialFd adopts a socket that libnetns connected (the ingress path)",
    async () => {
      const lib = rt.loadNetns(process.env.NSPROXY_LIBNETNS);
      const srv = await listen(rt, { serve: (a) => ({ onClientData: () => void a.sock.write(bytes("pong")) }) });
      const self = lib.nsx_open_self();
      assert.ok(self >= 0, `nsx_open_self: ${self}`);
      try {
        const fd = lib.nsx_connect_in(self, self, bytes("127.0.0.1\0"), srv.port);
        assert.ok(fd >= 0, `nsx_connect_in: ${fd}`);
        const c = await dialed(rt, {}, (_to, events) => rt.dialFd(fd, events));
        assert.ok(c.sock, `dialFd failed: ${c.seen.error}`);
        await send(c, "ping");
        await until("the answer", () => c.seen.text() === "pong");
        c.sock.end();
        await until("the close", () => c.seen.count("close") > 0);
      } finally {
        lib.nsx_close(self);
        srv.listener.stop(true);
      }
    },
    process.getuid?.() === 0 ? undefined : "not root (setns into the own namespace needs CAP_SYS_ADMIN)",
  );
}
