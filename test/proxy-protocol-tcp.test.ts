// PROXY protocol v2 to the upstream and TCP mode, on real namespaces: the header as the upstream parsed it (source,
// listener, NETNS and SSL TLVs; HAProxy's own parser for the addresses), one client connection per upstream
// connection, 100 MB each way intact with half-close, TLS terminated in TCP mode, and a TCP tenant beside an HTTP one.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { type Ca, haveOpenssl, makeCa, makeLeaf } from "./helpers/certs.ts";
import { daemonDir, skipOnDeno, startNsproxy } from "./helpers/daemon.ts";
import { haveHaproxy, parsePPLine, startHaproxyPP } from "./helpers/haproxy-pp.ts";
import { addNetns, cleanupNetns, curlIn, nsExec, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type PpEcho, startPpUpstream } from "./helpers/pp-upstream.ts";
import { expected, startEchoServer, startSinkServer } from "./helpers/tcp-stream.ts";
import { startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("pptcp");
const STREAM = `${import.meta.dir}/helpers/tcp-stream.ts`;

/** `count` requests on one keep-alive connection from inside `ns` (curl reuses it for URLs given together). */
async function keepAlive(ns: string, url: string, count: number, extra: string[] = []): Promise<PpEcho[]> {
  const urls = Array.from({ length: count }, () => url);
  const r = await nsExec(ns, ["curl", "-sS", "--max-time", "10", ...extra, ...urls]);
  if (r.code !== 0) throw new Error(`curl: ${r.stderr}`);
  // Bodies are JSON objects back to back.
  return r.stdout.split(/(?<=\})(?=\{)/).map((s) => JSON.parse(s));
}

/** Deno tells no negotiated TLS version, so its PROXY v2 headers carry no SSL TLV (README, Deno). */
const noTlsVersion = skipOnDeno("the SSL TLV of PROXY v2 (Deno exposes no negotiated TLS version)");

describe.skipIf(Boolean(skipReason))("PROXY protocol v2 to the upstream", () => {
  let pp: ReturnType<typeof startPpUpstream>;
  let dir: string;
  let ca: Ca | undefined;
  beforeAll(() => {
    pp = startPpUpstream();
    dir = daemonDir();
    if (haveOpenssl) ca = makeCa(`${dir}/ca`);
  });
  afterAll(() => {
    pp?.stop();
    cleanupNetns(prefix);
  });

  test("source and listener as seen in the namespace, NETNS TLV = tenant, SSL TLV over TLS; one client connection per upstream connection", async () => {
    const ns = addNetns(`${prefix}pp`, ["10.9.0.5/32"]);
    const certs = `${dir}/pp`;
    mkdirSync(certs);
    const args = ["run", "-w", "1", "-l", "10.9.0.5:8080", "-u", `http://127.0.0.1:${pp.port}`, "--upstream-proxy-protocol", "v2", "-n", `acme=/run/netns/${ns}`, "--no-access-log"];
    if (ca) {
      makeLeaf(ca, `${certs}/acme`, "acme", { ips: ["10.9.0.5"] });
      args.push("-l", "https://10.9.0.5:8443", "--tls-cert", `${certs}/{tenant}.crt`, "--tls-key", `${certs}/{tenant}.key`);
    }
    const d = startNsproxy(args);
    try {
      await d.waitFor("attached 1/1");
      // Two requests on one client connection: one upstream connection, one header.
      const [first, second] = await keepAlive(ns, "http://10.9.0.5:8080/a", 2, ["--interface", "10.9.0.5"]);
      expect(first!.pp).toMatchObject({ command: "PROXY", family: "TCP4", srcAddr: "10.9.0.5", dstAddr: "10.9.0.5", dstPort: 8080, netns: "acme" });
      expect(first!.pp.srcPort).toBeGreaterThan(0);
      expect(first!.pp.ssl).toBeUndefined();
      expect(second!.conn).toBe(first!.conn);
      expect(second!.req).toBe(2);
      // The stamp still travels as a header too.
      expect(first!.headers["x-nsproxy-tenant"]).toBe("acme");
      // Another client connection never shares that upstream connection (it would carry the wrong source).
      const [third] = await keepAlive(ns, "http://10.9.0.5:8080/b", 1);
      expect(third!.conn).not.toBe(first!.conn);
      expect(third!.pp.srcPort).not.toBe(first!.pp.srcPort);
      if (ca) {
        const [tls] = await keepAlive(ns, "https://10.9.0.5:8443/c", 1, ["--cacert", ca.cert]);
        expect(tls!.pp).toMatchObject({ srcAddr: "10.9.0.5", dstPort: 8443, netns: "acme" });
        if (!noTlsVersion) {
          expect(tls!.pp.ssl?.client).toBe(1);
          expect(tls!.pp.ssl?.version).toMatch(/^TLSv1\.[23]$/);
        }
        expect(tls!.headers["x-forwarded-proto"]).toBe("https");
      }
      // A hostile client sending its own PROXY header (curl --haproxy-protocol: a v1 line before its request)
      // gets a 400 from nsproxy's strict parser; nothing of it reaches the upstream.
      const before = pp.requests();
      const forged = await curlIn(ns, "http://10.9.0.5:8080/forged", ["--haproxy-protocol"]);
      expect(forged.status).toBe(400);
      expect(pp.requests()).toBe(before);
      expect(pp.errors).toEqual([]);
    } finally {
      await d.stop("SIGKILL");
    }
  });

  test.skipIf(!haveHaproxy)("HAProxy (accept-proxy) as the upstream reads the same source and destination", async () => {
    const ha = await startHaproxyPP();
    const ns = addNetns(`${prefix}ha`, ["10.9.0.7/32"]);
    const d = startNsproxy(["run", "-w", "1", "-l", "10.9.0.7:8080", "-u", `http://127.0.0.1:${ha.port}`, "--upstream-proxy-protocol", "v2", "-n", ns, "--no-access-log"]);
    try {
      await d.waitFor("attached 1/1");
      const r = await curlIn(ns, "http://10.9.0.7:8080/", ["--interface", "10.9.0.7"]);
      expect(r.status).toBe(200);
      const seen = parsePPLine(r.body);
      expect(seen.src).toBe("10.9.0.7");
      expect(seen.dst).toBe("10.9.0.7");
      expect(seen.dport).toBe("8080");
      expect(Number(seen.sport)).toBeGreaterThan(0);
    } finally {
      await d.stop("SIGKILL");
      ha.stop();
    }
  });
});

describe.skipIf(Boolean(skipReason))("TCP mode", () => {
  const MB = 1024 * 1024;
  afterAll(() => cleanupNetns(prefix));

  test("100 MB each way intact with half-close, beside an HTTP tenant on the same daemon; PROXY v2 first when asked", async () => {
    const sink = await startSinkServer(7, 100 * MB);
    const http = startUpstream();
    const pp = startPpUpstream();
    const [tcpNs, httpNs, ppNs] = [addNetns(`${prefix}tcp`), addNetns(`${prefix}http`), addNetns(`${prefix}tpp`)];
    const dir = daemonDir();
    const { writeFileSync } = await import("node:fs");
    writeFileSync(
      `${dir}/c.toml`,
      `[tenants.db]\nnetns = "${tcpNs}"\nmode = "tcp"\nlisten = "127.0.0.1:5432"\nupstream = "tcp://127.0.0.1:${sink.port}"\n` +
        `[tenants.web]\nnetns = "${httpNs}"\nlisten = "127.0.0.1:8080"\nupstream = "http://127.0.0.1:${http.port}"\n` +
        `[tenants.ppdb]\nnetns = "${ppNs}"\nmode = "tcp"\nlisten = "127.0.0.1:5432"\nupstream = "tcp://127.0.0.1:${pp.port}"\nupstream_proxy_protocol = "v2"\n`,
    );
    const d = startNsproxy(["run", "-c", `${dir}/c.toml`, "-w", "2", "--no-access-log"]);
    try {
      await d.waitFor("attached 3/3");
      const r = await nsExec(tcpNs, [process.execPath, STREAM, "client", "127.0.0.1", "5432", "3", String(100 * MB)], 120_000);
      expect(r.stderr).toBe("");
      const back = JSON.parse(r.stdout);
      // The server saw exactly the client's stream, then the client's FIN; the client saw exactly the server's.
      expect(sink.received).toEqual([expected(3, 100 * MB)]);
      expect({ sha256: back.sha256, bytes: back.bytes }).toEqual(expected(7, 100 * MB));
      console.log(`  TCP mode: 100 MB up then 100 MB down through nsproxy in ${(back.ms / 1000).toFixed(2)} s`);
      // The HTTP tenant on the same daemon is unaffected.
      const web = await curlIn(httpNs, "http://127.0.0.1:8080/x");
      expect(web.status).toBe(200);
      expect(JSON.parse(web.body).headers["x-nsproxy-tenant"]).toBe("web");
      // TCP mode with PROXY v2: the header comes first, then the client's bytes untouched (here an HTTP request).
      const ppr = await curlIn(ppNs, "http://127.0.0.1:5432/raw");
      expect(ppr.status).toBe(200);
      const echo = JSON.parse(ppr.body) as PpEcho;
      expect(echo.pp).toMatchObject({ command: "PROXY", srcAddr: "127.0.0.1", dstPort: 5432, netns: "ppdb" });
      // No stamp in TCP mode: the bytes are the client's own.
      expect(echo.headers["x-nsproxy-tenant"]).toBeUndefined();
    } finally {
      await d.stop("SIGKILL");
      sink.server.close();
      http.stop(true);
      pp.stop();
    }
  });

  test.skipIf(!haveOpenssl)("an https:// listener in TCP mode terminates TLS and forwards the plaintext", async () => {
    const echo = await startEchoServer();
    const ns = addNetns(`${prefix}tls`);
    const dir = daemonDir();
    const ca = makeCa(`${dir}/ca`);
    makeLeaf(ca, `${dir}/pair`, "tcp-tls");
    const d = startNsproxy(["run", "-w", "1", "--mode", "tcp", "-l", "https://127.0.0.1:6380", "-u", `tcp://127.0.0.1:${echo.port}`, "--tls-cert", `${dir}/pair.crt`, "--tls-key", `${dir}/pair.key`, "-n", ns, "--no-access-log"]);
    try {
      await d.waitFor("attached 1/1");
      // openssl s_client sends stdin over TLS (verifying the tenant's certificate) and prints what comes back;
      // stdin stays open a moment so the echo can arrive.
      const r = await nsExec(ns, ["sh", "-c", `(printf 'PING over tls\\n'; sleep 1) | timeout 20 openssl s_client -connect 127.0.0.1:6380 -CAfile ${ca.cert} -verify_return_error -quiet -no_ign_eof 2>/dev/null`], 30_000);
      expect(r.stdout).toBe("PING over tls\n");
    } finally {
      await d.stop("SIGKILL");
      echo.server.close();
    }
  });

  test.skipIf(!haveOpenssl || Boolean(noTlsVersion))("TLS in TCP mode with PROXY v2: the header carries the negotiated TLS version (dialed after the handshake)", async () => {
    const pp = startPpUpstream();
    const ns = addNetns(`${prefix}tlspp`);
    const dir = daemonDir();
    const ca = makeCa(`${dir}/ca`);
    makeLeaf(ca, `${dir}/pair`, "tcp-tls-pp");
    const d = startNsproxy(["run", "-w", "1", "--mode", "tcp", "-l", "https://127.0.0.1:6381", "-u", `tcp://127.0.0.1:${pp.port}`, "--upstream-proxy-protocol", "v2", "--tls-cert", `${dir}/pair.crt`, "--tls-key", `${dir}/pair.key`, "-n", ns, "--no-access-log"]);
    try {
      await d.waitFor("attached 1/1");
      const [echo] = await keepAlive(ns, "https://127.0.0.1:6381/x", 1, ["--cacert", ca.cert]);
      expect(echo!.pp).toMatchObject({ command: "PROXY", srcAddr: "127.0.0.1", dstPort: 6381, netns: ns });
      expect(echo!.pp.ssl?.version).toMatch(/^TLSv1\.[23]$/);
    } finally {
      await d.stop("SIGKILL");
      pp.stop();
    }
  });
});
