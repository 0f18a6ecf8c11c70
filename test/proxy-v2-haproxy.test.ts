// Our PROXY v2 header against a real third-party implementation, HAProxy 2.6, on host loopback, both ways:
//  - HAProxy as the receiver (`accept-proxy`, mode http): it reports the addresses and ports it took from our header;
//    HAProxy 2.6 has no fetch for arbitrary TLVs (fc_pp_tlv is 2.9+), so a UNIQUE_ID TLV appended after ours, which
//    it does report, shows that it walked our SSL and NETNS TLVs by their lengths; and it refuses a header whose TLVs
//    do not add up, so the positive rows mean something.
//  - HAProxy as the sender (`send-proxy-v2`, mode tcp) to a capture port: its header for the same connection shape
//    is ours, byte for byte, without the NETNS TLV (a frontend outside any namespace has none to send): plain IPv4,
//    IPv6, and TLS (`proxy-v2-options ssl`: SSL TLV with the version sub-TLV).
//  - HAProxy as a relay (`accept-proxy` in, `send-proxy-v2` out): what it sends on is what it read from ours. With
//    the tenant's name declared in its `namespace_list` (a real, empty namespace), it keeps our NETNS TLV and sends it
//    again: the one way HAProxy 2.6 shows its reading of PP2_TYPE_NETNS.
import type { TCPSocketListener } from "bun";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { PP2_TYPE_NETNS, PP2_TYPE_SSL, PP2_TYPE_UNIQUE_ID, type ProxyV2Info, proxyV2Header } from "../src/engine/proxy-v2.ts";
import { parseProxyV2 } from "./helpers/proxy-v2-decode.ts";
import { type HaproxyInstance, type HaproxySender, haveHaproxy, haveIpv6Loopback, parsePPLine, startHaproxyPP, startHaproxySender } from "./helpers/haproxy-pp.ts";
import { addNetns, isRoot, uniquePrefix } from "./helpers/netns.ts";
import { type PpEcho, type PpUpstream, startPpUpstream } from "./helpers/pp-upstream.ts";
import { until } from "./helpers/wait.ts";

const ipv6 = await haveIpv6Loopback();
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const GET = (host = "h") => Buffer.from(`GET /pp HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, "latin1");

/** Connect, write `bytes`, read until HAProxy closes (or 5 s): the whole reply as latin1 ("" when refused). */
async function exchange(host: string, port: number, bytes: Uint8Array): Promise<string> {
  let got = "";
  let done!: () => void;
  const closed = new Promise<void>((r) => (done = r));
  const sock = await Bun.connect({
    hostname: host,
    port,
    socket: {
      open(s) {
        s.write(bytes);
      },
      data(_s, d) {
        got += Buffer.from(d).toString("latin1");
      },
      close() {
        done();
      },
      error() {
        done();
      },
    },
  });
  const t = setTimeout(() => sock.end(), 5000);
  await closed;
  clearTimeout(t);
  return got;
}

/** The header with one more TLV at its end (length field updated). */
function withTlv(h: Uint8Array, type: number, value: string): Uint8Array {
  const v = Buffer.from(value, "latin1");
  const out = new Uint8Array(h.length + 3 + v.length);
  out.set(h);
  out.set([type, v.length >> 8, v.length & 0xff], h.length);
  out.set(v, h.length + 3);
  const len = out.length - 16;
  out[14] = len >> 8;
  out[15] = len & 0xff;
  return out;
}

/** The header without the TLVs of `type` (length field updated): what a sender that has no such value writes. */
function withoutTlv(h: Uint8Array, type: number): Uint8Array {
  const p = parseProxyV2(h)!;
  const addrEnd = 16 + (p.family === "TCP4" ? 12 : 36);
  const parts: number[] = [...h.subarray(0, addrEnd)];
  for (const t of p.tlvs) if (t.type !== type) parts.push(t.type, t.value.length >> 8, t.value.length & 0xff, ...t.value);
  const out = Uint8Array.from(parts);
  out[14] = (out.length - 16) >> 8;
  out[15] = (out.length - 16) & 0xff;
  return out;
}

/** A 64-character tenant name (the longest nsproxy allows), with the characters it allows. */
const TENANT64 = "T1.a_b-c".padEnd(64, "z");

describe.skipIf(!haveHaproxy)("HAProxy 2.6 with accept-proxy reads our header", () => {
  let hap: HaproxyInstance;
  beforeAll(async () => {
    hap = await startHaproxyPP({ ipv6 });
  });
  afterAll(async () => {
    await hap?.stop();
  });

  const ask = async (info: ProxyV2Info, host = "127.0.0.1", port = hap.port, extra?: (h: Uint8Array) => Uint8Array) => {
    const h = proxyV2Header(info);
    const reply = await exchange(host, port, Buffer.concat([extra ? extra(h) : h, GET()]));
    expect(reply, hap.stderr()).toStartWith("HTTP/1.1 200");
    return parsePPLine(reply.slice(reply.indexOf("\r\n\r\n") + 4));
  };

  test("the helper itself: the vector of HAProxy's reg-test unique-id-from-proxy.vtc", async () => {
    const vector = Buffer.from("0d0a0d0a000d0a515549540a" + "2111" + "0014" + "7f0000017f000001002a0539" + "0500053132333435", "hex");
    const reply = await exchange("127.0.0.1", hap.port, Buffer.concat([vector, GET()]));
    const f = parsePPLine(reply.slice(reply.indexOf("\r\n\r\n") + 4));
    expect(f).toMatchObject({ src: "127.0.0.1", sport: "42", dst: "127.0.0.1", dport: "1337", unique_id: "12345", rcvd_proxy: "1" });
  });

  test("IPv4: the header's addresses and ports, not the socket's", async () => {
    const f = await ask({ srcAddr: "10.11.12.13", srcPort: 54321, dstAddr: "169.254.169.254", dstPort: 80, netns: "acme" });
    expect(f).toMatchObject({ src: "10.11.12.13", sport: "54321", dst: "169.254.169.254", dport: "80", rcvd_proxy: "1", fc_src: "127.0.0.1" });
  });

  test("IPv4-mapped on both ends arrives as IPv4", async () => {
    const f = await ask({ srcAddr: "::ffff:10.0.0.5", srcPort: 40000, dstAddr: "::ffff:10.0.0.1", dstPort: 8080, netns: "acme" });
    expect(f).toMatchObject({ src: "10.0.0.5", sport: "40000", dst: "10.0.0.1", dport: "8080" });
  });

  test("IPv6, and mixed families as IPv6 with the IPv4 end mapped", async () => {
    const f = await ask({ srcAddr: "2001:db8::5", srcPort: 1, dstAddr: "fd00::a:1", dstPort: 65535, netns: "acme" });
    expect(f).toMatchObject({ src: "2001:db8::5", sport: "1", dst: "fd00::a:1", dport: "65535" });
    const m = await ask({ srcAddr: "10.0.0.5", srcPort: 2, dstAddr: "fe80::1%lo", dstPort: 443, netns: "acme" });
    expect(m).toMatchObject({ src: "::ffff:10.0.0.5", sport: "2", dst: "fe80::1", dport: "443" });
  });

  test.skipIf(!ipv6)("over ::1", async () => {
    const f = await ask({ srcAddr: "::1", srcPort: 33000, dstAddr: "::1", dstPort: 8443, netns: "acme", tlsVersion: "TLSv1.3" }, "::1", hap.port6);
    expect(f).toMatchObject({ src: "::1", sport: "33000", dst: "::1", dport: "8443", fc_src: "::1" });
  });

  test("it walks our SSL and NETNS TLVs by their lengths: a UNIQUE_ID and an AUTHORITY after them are read", async () => {
    for (const tlsVersion of [undefined, "TLSv1.3"]) {
      for (const [srcAddr, dstAddr] of [
        ["192.0.2.1", "192.0.2.2"],
        ["2001:db8::1", "2001:db8::2"],
      ] as const) {
        const info = { srcAddr, srcPort: 1234, dstAddr, dstPort: 443, netns: TENANT64, tlsVersion };
        const f = await ask(info, "127.0.0.1", hap.port, (h) => withTlv(withTlv(h, PP2_TYPE_UNIQUE_ID, "uid-after-ours"), 0x02, "auth.example"));
        expect(f).toMatchObject({ src: srcAddr, dst: dstAddr, unique_id: "uid-after-ours", authority: "auth.example" });
      }
    }
  });

  test("it refuses what does not add up (so the rows above mean something)", async () => {
    const h = proxyV2Header({ srcAddr: "192.0.2.1", srcPort: 1, dstAddr: "192.0.2.2", dstPort: 2, netns: "acme", tlsVersion: "TLSv1.3" });
    // length field one short: the NETNS TLV runs past the header
    const short = h.slice();
    short[15]! -= 1;
    expect(await exchange("127.0.0.1", hap.port, Buffer.concat([short, GET()]))).toBe("");
    // the SSL TLV's length one too long: it swallows the NETNS TLV's type byte, whose remainder then overflows
    const ssl = h.slice();
    expect(ssl[28]).toBe(PP2_TYPE_SSL);
    ssl[30]! += 1;
    expect(await exchange("127.0.0.1", hap.port, Buffer.concat([ssl, GET()]))).toBe("");
    // and the unchanged header passes
    expect(await exchange("127.0.0.1", hap.port, Buffer.concat([h, GET()]))).toStartWith("HTTP/1.1 200");
  });
});

describe.skipIf(!haveHaproxy)("HAProxy 2.6 as a sender writes the same bytes", () => {
  /** Every header the capture port received, raw, and any our parser refused. */
  const captured: Uint8Array[] = [];
  const refused: string[] = [];
  let capture: TCPSocketListener<{ buf: Buffer; done: boolean }>;
  let hap: HaproxySender;
  let certDir = "";
  /** The tenant's namespace HAProxy knows (a real, empty one), when root; "" otherwise. */
  let knownNs = "";

  beforeAll(async () => {
    capture = Bun.listen<{ buf: Buffer; done: boolean }>({
      hostname: "127.0.0.1",
      port: 0,
      data: { buf: Buffer.alloc(0), done: false },
      socket: {
        open(s) {
          s.data = { buf: Buffer.alloc(0), done: false };
        },
        data(s, d) {
          if (s.data.done) return;
          s.data.buf = Buffer.concat([s.data.buf, d]);
          try {
            const p = parseProxyV2(s.data.buf);
            if (!p) return;
            s.data.done = true;
            captured.push(s.data.buf.subarray(0, p.headerLength));
          } catch (e) {
            s.data.done = true;
            refused.push((e as Error).message);
          }
          s.end();
        },
      },
    });
    certDir = mkdtempSync(`${tmpdir()}/nsproxy-pp-cert-`);
    const gen = Bun.spawnSync(
      ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", `${certDir}/k.pem`, "-out", `${certDir}/c.pem`],
      { stdout: "pipe", stderr: "pipe" },
    );
    if (gen.exitCode !== 0) throw new Error(`openssl: ${gen.stderr.toString()}`);
    await Bun.write(`${certDir}/both.pem`, (await Bun.file(`${certDir}/c.pem`).text()) + (await Bun.file(`${certDir}/k.pem`).text()));
    if (isRoot) knownNs = addNetns(`${uniquePrefix("pp")}`.padEnd(64, "n"));
    hap = await startHaproxySender({ capturePort: capture.port, pem: `${certDir}/both.pem`, namespaces: knownNs ? [knownNs] : [], ipv6 });
  });
  afterAll(async () => {
    await hap?.stop();
    capture?.stop(true);
    if (certDir) rmSync(certDir, { recursive: true, force: true });
  });

  /** The header HAProxy sent for the connection whose source port (as HAProxy wrote it) is `port`. */
  const headerFrom = (port: number) =>
    until(`HAProxy's header for source port ${port} (refused by our parser: ${refused.join("; ")})`, () => captured.find((h) => parseProxyV2(h)?.srcPort === port), 5000);

  /** Connect (TLS or not), send a line, and return the client's local address and port. */
  async function connectFrom(host: string, port: number, tls: boolean): Promise<{ addr: string; port: number; tlsVersion?: string; close(): void }> {
    let opened!: (v: { addr: string; port: number; tlsVersion?: string }) => void;
    const ready = new Promise<{ addr: string; port: number; tlsVersion?: string }>((r) => (opened = r));
    const sock = await Bun.connect({
      hostname: host,
      port,
      ...(tls ? { tls: { rejectUnauthorized: false, serverName: "localhost" } } : {}),
      socket: {
        open(s) {
          if (!tls) {
            s.write("hello\n");
            opened({ addr: s.localAddress, port: s.localPort });
          }
        },
        handshake(s) {
          s.write("hello\n");
          opened({ addr: s.localAddress, port: s.localPort, tlsVersion: s.getTLSVersion() });
        },
        data() {},
      },
    });
    const timeout = new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`no connection to ${host}:${port}`)), 5000));
    const info = await Promise.race([ready, timeout]);
    return { ...info, close: () => sock.end() };
  }

  test("plain IPv4: HAProxy's header is ours without NETNS", async () => {
    const c = await connectFrom("127.0.0.1", hap.plain, false);
    const theirs = await headerFrom(c.port);
    c.close();
    const ours = proxyV2Header({ srcAddr: c.addr, srcPort: c.port, dstAddr: "127.0.0.1", dstPort: hap.plain, netns: "acme" });
    expect(toHex(theirs)).toBe(toHex(withoutTlv(ours, PP2_TYPE_NETNS)));
    expect(theirs[13]).toBe(0x11);
  });

  test.skipIf(!ipv6)("plain IPv6 on ::1: HAProxy's header is ours without NETNS", async () => {
    const c = await connectFrom("::1", hap.plain6!, false);
    const theirs = await headerFrom(c.port);
    c.close();
    const ours = proxyV2Header({ srcAddr: c.addr, srcPort: c.port, dstAddr: "::1", dstPort: hap.plain6!, netns: "acme" });
    expect(toHex(theirs)).toBe(toHex(withoutTlv(ours, PP2_TYPE_NETNS)));
    expect(theirs[13]).toBe(0x21);
  });

  test("TLS with proxy-v2-options ssl: the SSL TLV (client, verify, version sub-TLV) is ours, byte for byte", async () => {
    const c = await connectFrom("127.0.0.1", hap.tls!, true);
    const theirs = await headerFrom(c.port);
    c.close();
    expect(c.tlsVersion).toBe("TLSv1.3");
    const ours = proxyV2Header({ srcAddr: c.addr, srcPort: c.port, dstAddr: "127.0.0.1", dstPort: hap.tls!, netns: "acme", tlsVersion: c.tlsVersion });
    expect(toHex(theirs)).toBe(toHex(withoutTlv(ours, PP2_TYPE_NETNS)));
    expect(parseProxyV2(theirs)!.ssl).toEqual({ client: 1, verify: 0, version: "TLSv1.3", subTlvs: [{ type: 0x21, value: Buffer.from("TLSv1.3") }] });
  });

  test.skipIf(!isRoot)("relay: HAProxy reads our addresses and our 64-character NETNS TLV and sends them on unchanged", async () => {
    expect(knownNs.length).toBe(64);
    const shapes: ProxyV2Info[] = [
      { srcAddr: "10.1.2.3", srcPort: 40001, dstAddr: "169.254.169.254", dstPort: 80, netns: knownNs },
      { srcAddr: "::ffff:10.1.2.3", srcPort: 40002, dstAddr: "::ffff:10.0.0.1", dstPort: 8080, netns: knownNs },
      { srcAddr: "2001:db8::7", srcPort: 40003, dstAddr: "fd00::1", dstPort: 443, netns: knownNs },
      { srcAddr: "10.1.2.3", srcPort: 40004, dstAddr: "fd00::1", dstPort: 443, netns: knownNs },
    ];
    for (const info of shapes) {
      await exchange("127.0.0.1", hap.relay, Buffer.concat([proxyV2Header(info), Buffer.from("x")]));
      const theirs = await headerFrom(info.srcPort);
      expect(toHex(theirs)).toBe(toHex(proxyV2Header(info)));
    }
    // With the SSL TLV before NETNS: HAProxy skips it by its length and still finds NETNS (it does not relay SSL).
    const tls: ProxyV2Info = { srcAddr: "10.1.2.3", srcPort: 40005, dstAddr: "10.0.0.1", dstPort: 443, netns: knownNs, tlsVersion: "TLSv1.3" };
    await exchange("127.0.0.1", hap.relay, Buffer.concat([proxyV2Header(tls), Buffer.from("x")]));
    expect(toHex(await headerFrom(40005))).toBe(toHex(proxyV2Header({ ...tls, tlsVersion: undefined })));
  });

  test("relay: a NETNS naming no namespace HAProxy knows is dropped (it is a lookup, not a copy)", async () => {
    const info: ProxyV2Info = { srcAddr: "10.1.2.3", srcPort: 40010, dstAddr: "10.0.0.1", dstPort: 80, netns: "not-a-namespace-here" };
    await exchange("127.0.0.1", hap.relay, Buffer.concat([proxyV2Header(info), Buffer.from("x")]));
    expect(toHex(await headerFrom(40010))).toBe(toHex(withoutTlv(proxyV2Header(info), PP2_TYPE_NETNS)));
  });

  test("our parser refused nothing HAProxy sent", () => {
    expect(refused).toEqual([]);
  });
});

describe("helpers/pp-upstream.ts (the upstream of the end-to-end tests)", () => {
  let up: PpUpstream;
  beforeAll(() => {
    up = startPpUpstream();
  });
  afterAll(() => up?.stop());

  /** Split a stream of Content-Length responses into their JSON bodies. */
  const bodies = (raw: string) => {
    const out: PpEcho[] = [];
    let rest = raw;
    for (let i = 0; i < 100 && rest.length > 0; i++) {
      const end = rest.indexOf("\r\n\r\n");
      const len = Number(/content-length: (\d+)/i.exec(rest.slice(0, end))![1]);
      out.push(JSON.parse(rest.slice(end + 4, end + 4 + len)));
      rest = rest.slice(end + 4 + len);
    }
    return out;
  };

  test("header, then pipelined keep-alive requests with bodies, answered in order on one connection", async () => {
    const info: ProxyV2Info = { srcAddr: "::ffff:10.9.8.7", srcPort: 5555, dstAddr: "::ffff:169.254.169.254", dstPort: 443, netns: "acme", tlsVersion: "TLSv1.3" };
    const reqs =
      "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nX-Nsproxy-Tenant: acme\r\n\r\nhello" +
      "GET /slow?ms=100 HTTP/1.1\r\nHost: h\r\n\r\n" +
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
      "GET /d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    const reply = await exchange("127.0.0.1", up.port, Buffer.concat([proxyV2Header(info), Buffer.from(reqs, "latin1")]));
    const got = bodies(reply);
    expect(got.map((b) => [b.req, b.method, b.path, b.bodyBytes])).toEqual([
      [1, "POST", "/a", 5],
      [2, "GET", "/slow?ms=100", 0],
      [3, "POST", "/c", 13],
      [4, "GET", "/d", 0],
    ]);
    const conn = got[0]!.conn;
    expect(got.every((b) => b.conn === conn)).toBe(true);
    expect(got[0]!.headers["x-nsproxy-tenant"]).toBe("acme");
    expect(got[0]!.pp).toMatchObject({ command: "PROXY", family: "TCP4", srcAddr: "10.9.8.7", srcPort: 5555, dstAddr: "169.254.169.254", dstPort: 443, netns: "acme" });
    expect(got[0]!.pp.ssl).toEqual({ client: 1, verify: 0, version: "TLSv1.3", subTlvs: [{ type: 0x21, hex: Buffer.from("TLSv1.3").toString("hex"), text: "TLSv1.3" }] });
    expect(got[0]!.pp.tlvs.map((t) => [t.type, t.text.slice(-4)])).toEqual([
      [PP2_TYPE_SSL, "v1.3"],
      [PP2_TYPE_NETNS, "acme"],
    ]);
    expect(up.connections[conn - 1]).toEqual(got[0]!.pp);
  });

  test("a header split across writes; each connection gets its own number", async () => {
    const h = proxyV2Header({ srcAddr: "::1", srcPort: 7, dstAddr: "::1", dstPort: 8, netns: "split" });
    const a = await exchange("127.0.0.1", up.port, Buffer.concat([h, GET()]));
    const b = await exchange("127.0.0.1", up.port, Buffer.concat([h, GET()]));
    expect(bodies(b)[0]!.conn).toBe(bodies(a)[0]!.conn + 1);
    let got = "";
    let done!: () => void;
    const closed = new Promise<void>((r) => (done = r));
    const sock = await Bun.connect({ hostname: "127.0.0.1", port: up.port, socket: { data: (_s, d) => void (got += Buffer.from(d).toString("latin1")), close: () => done() } });
    for (const part of [h.subarray(0, 5), h.subarray(5, 20), h.subarray(20), GET()]) {
      sock.write(part);
      await Bun.sleep(20);
    }
    await Promise.race([closed, Bun.sleep(5000)]);
    expect(bodies(got)[0]!.pp).toMatchObject({ family: "TCP6", srcAddr: "::1", netns: "split" });
  });

  test("no header: 400 with the parser's error, connection closed, error recorded", async () => {
    const before = up.errors.length;
    const reply = await exchange("127.0.0.1", up.port, GET());
    expect(reply).toStartWith("HTTP/1.1 400");
    expect(reply).toContain("no v2 signature");
    expect(up.errors.length).toBe(before + 1);
  });
});
