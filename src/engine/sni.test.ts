// sniOf: real ClientHellos from openssl s_client and curl (captured once into testdata/client-hellos.json, and
// captured again live when the tools are installed), split at every byte and into records of every size, and
// malformed in each layer. A test-side builder re-encodes the captured hellos byte for byte, then skews one field.
import { describe, expect, test } from "bun:test";
import { type SniResult, sniOf } from "./sni.ts";

interface Fixture {
  label: string;
  command: string;
  expect: SniResult;
  hex: string;
}
const FIXTURES = ((await Bun.file(new URL("./testdata/client-hellos.json", import.meta.url)).json()) as { hellos: Fixture[] }).hellos;
const fixture = (label: string) => Buffer.from(FIXTURES.find((f) => f.label === label)!.hex, "hex");

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const cat = (...parts: Uint8Array[]) => Uint8Array.from(Buffer.concat(parts));
const u8 = (n: number) => Uint8Array.of(n & 0xff);
const u16 = (n: number) => Uint8Array.of((n >> 8) & 0xff, n & 0xff);
const u24 = (n: number) => Uint8Array.of((n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);

// ------------------------------------------------------------------ a ClientHello builder, with skewable lengths

interface Ext {
  type: number;
  data: Uint8Array;
}
interface Hello {
  version: number;
  random: Uint8Array;
  sessionId: Uint8Array;
  ciphers: Uint8Array;
  compression: Uint8Array;
  extensions?: Ext[];
}
/** Added to a length field as it is written (the content stays as it is). */
interface Skew {
  record?: number;
  handshake?: number;
  sessionId?: number;
  ciphers?: number;
  compression?: number;
  extensions?: number;
  /** [index of the extension, delta] */
  ext?: [number, number];
}

function body(h: Hello, s: Skew = {}): Uint8Array {
  const parts = [u16(h.version), h.random, u8(h.sessionId.length + (s.sessionId ?? 0)), h.sessionId];
  parts.push(u16(h.ciphers.length + (s.ciphers ?? 0)), h.ciphers, u8(h.compression.length + (s.compression ?? 0)), h.compression);
  if (h.extensions) {
    const exts = h.extensions.map((e, i) => cat(u16(e.type), u16(e.data.length + (s.ext?.[0] === i ? s.ext[1] : 0)), e.data));
    parts.push(u16(exts.reduce((n, e) => n + e.length, 0) + (s.extensions ?? 0)), ...exts);
  }
  return cat(...parts);
}
const handshake = (b: Uint8Array, s: Skew = {}, type = 1) => cat(u8(type), u24(b.length + (s.handshake ?? 0)), b);

/** Handshake bytes framed as records, cut at the given handshake offsets. */
function frame(hs: Uint8Array, cuts: number[] = [], s: Skew = {}, version = 0x0301): Uint8Array {
  const edges = [0, ...cuts, hs.length];
  const recs = edges.slice(1).map((e, i) => {
    const frag = hs.subarray(edges[i]!, e);
    return cat(u8(22), u16(version), u16(frag.length + (i === 0 ? (s.record ?? 0) : 0)), frag);
  });
  return cat(...recs);
}
const build = (h: Hello, s: Skew = {}, cuts: number[] = []) => frame(handshake(body(h, s), s), cuts, s);

/** The fields of a captured hello (its records joined), without judging them: the test's own reading. */
function dissect(bytes: Uint8Array): Hello {
  const frags: Uint8Array[] = [];
  for (let o = 0; o < bytes.length; o += 5 + ((bytes[o + 3]! << 8) | bytes[o + 4]!)) frags.push(bytes.subarray(o + 5, o + 5 + ((bytes[o + 3]! << 8) | bytes[o + 4]!)));
  const m = cat(...frags).subarray(4);
  let p = 34;
  const take = (n: number) => m.subarray(p, (p += n));
  const random = m.subarray(2, 34);
  const sessionId = take(m[p++]!);
  const ciphers = take((m[p++]! << 8) | m[p++]!);
  const compression = take(m[p++]!);
  if (p === m.length) return { version: (m[0]! << 8) | m[1]!, random, sessionId, ciphers, compression };
  p += 2;
  const extensions: Ext[] = [];
  while (p < m.length) extensions.push({ type: (m[p++]! << 8) | m[p++]!, data: take((m[p++]! << 8) | m[p++]!) });
  return { version: (m[0]! << 8) | m[1]!, random, sessionId, ciphers, compression, extensions };
}

/** A server_name extension; entries are [name_type, bytes]. */
function sniExt(entries: [number, Uint8Array][], listSkew = 0, entrySkew = 0): Ext {
  const list = cat(...entries.map(([t, b], i) => cat(u8(t), u16(b.length + (i === 0 ? entrySkew : 0)), b)));
  return { type: 0, data: cat(u16(list.length + listSkew), list) };
}
const CURL13 = dissect(fixture("curl TLS 1.3"));
/** curl's TLS 1.3 hello with its server_name extension replaced (or dropped: undefined). */
function withSni(ext: Ext | undefined, extra: Ext[] = []): Hello {
  const rest = CURL13.extensions!.filter((e) => e.type !== 0);
  return { ...CURL13, extensions: [...(ext ? [ext] : []), ...rest, ...extra] };
}
const named = (name: string | Uint8Array) => build(withSni(sniExt([[0, typeof name === "string" ? ascii(name) : name]])));

/** The result once nothing more can arrive: a "more" is followed by zero bytes up to the limit. */
function settle(buf: Uint8Array): SniResult {
  const r = sniOf(buf);
  return r.kind === "more" ? sniOf(cat(buf, new Uint8Array(16384))) : r;
}
function expectInvalid(buf: Uint8Array, reason: RegExp) {
  const r = settle(buf);
  expect(r.kind).toBe("invalid");
  if (r.kind === "invalid") expect(r.reason).toMatch(reason);
}
/** Every proper prefix is "more" or already the final answer (a decision taken early is never taken back). */
function expectPrefixesStable(buf: Uint8Array, final = sniOf(buf)) {
  for (let n = 0; n < buf.length; n++) {
    const r = sniOf(buf.subarray(0, n));
    if (r.kind !== "more") expect({ n, r: r as SniResult }).toEqual({ n, r: final });
  }
}

// ------------------------------------------------------------------ captured hellos

describe("captured ClientHellos", () => {
  for (const f of FIXTURES) {
    test(`${f.label}: ${f.command}`, () => {
      const buf = Buffer.from(f.hex, "hex");
      expect(sniOf(buf)).toEqual(f.expect);
      // Split across TCP reads anywhere: "more" until the last byte, then the same answer.
      for (let n = 0; n < buf.length; n++) expect(sniOf(buf.subarray(0, n))).toEqual({ kind: "more" });
      // What follows the ClientHello's record (a ChangeCipherSpec, early data) is not looked at.
      expect(sniOf(cat(buf, hex("140303000101 1703030005 0102030405")))).toEqual(f.expect);
    });
  }

  test("the builder re-encodes every capture byte for byte", () => {
    for (const f of FIXTURES) {
      const buf = Buffer.from(f.hex, "hex");
      const cuts = f.label.includes("512-byte") ? [512, 1024] : [];
      expect(Buffer.from(build(dissect(buf), {}, cuts)).toString("hex")).toBe(f.hex);
    }
  });

  test("TLS 1.3 and 1.2-only clients of both tools are among them", () => {
    const versions = FIXTURES.map((f) => dissect(fixture(f.label)).extensions?.find((e) => e.type === 43));
    expect(versions.some((e) => e && Buffer.from(e.data).includes(Buffer.from([3, 4])))).toBe(true);
    const tls12 = FIXTURES.filter((f) => f.label.includes("1.2")).map((f) => dissect(fixture(f.label)));
    expect(tls12.length).toBeGreaterThanOrEqual(2);
    for (const h of tls12) expect(h.extensions?.some((e) => e.type === 43)).toBe(false);
  });
});

describe("records", () => {
  const hs = handshake(body(CURL13));

  test("two records, cut at every handshake byte (the 4-byte header included)", () => {
    for (let k = 1; k < hs.length; k++) expect(sniOf(frame(hs, [k]))).toEqual({ kind: "found", name: "x.example" });
  });

  test("split into records and across reads: more until complete, then the same answer", () => {
    for (const cuts of [[1], [3], [4], [200], [hs.length - 1], [2, 100, 101, 400]]) {
      const buf = frame(hs, cuts);
      for (let n = 0; n < buf.length; n++) expect(sniOf(buf.subarray(0, n))).toEqual({ kind: "more" });
      expect(sniOf(buf)).toEqual({ kind: "found", name: "x.example" });
    }
  });

  test("one byte per record", () => {
    const buf = frame(hs, Array.from({ length: hs.length - 1 }, (_, i) => i + 1));
    expect(buf.length).toBe(hs.length * 6);
    expect(sniOf(buf)).toEqual({ kind: "found", name: "x.example" });
    // Over the buffering bound before completing: refused, not waited for.
    expect(sniOf(buf, 3000)).toEqual({ kind: "invalid", status: 400, reason: "no complete ClientHello in the first 3000 bytes", offset: 3000 });
    expect(sniOf(buf.subarray(0, 2999), 3000)).toEqual({ kind: "more" });
  });

  test("any 0x03xx record version", () => {
    for (const v of [0x0300, 0x0301, 0x0303, 0x03ff]) expect(sniOf(frame(hs, [100], {}, v))).toEqual({ kind: "found", name: "x.example" });
  });

  test("a ClientHello larger than the bound is refused as soon as its header arrives", () => {
    const big = withSni(sniExt([[0, ascii("x.example")]]), [{ type: 0x1234, data: new Uint8Array(20000) }]);
    const buf = build(big, {}, [16000]);
    expect(sniOf(buf.subarray(0, 9))).toEqual({ kind: "invalid", status: 400, reason: `ClientHello of ${buf.length - 14} bytes cannot fit in 16384`, offset: 6 });
    expect(sniOf(buf, 32768)).toEqual({ kind: "found", name: "x.example" });
  });

  test("a complete ClientHello within a longer buffer is found whatever the bound", () => {
    const buf = cat(frame(hs), new Uint8Array(20000).fill(0x17));
    expect(sniOf(buf)).toEqual({ kind: "found", name: "x.example" });
    expect(sniOf(buf, 600)).toEqual({ kind: "found", name: "x.example" });
  });
});

// ------------------------------------------------------------------ server_name

describe("server_name", () => {
  test("names", () => {
    expect(sniOf(named("API.Acme.Example.COM"))).toEqual({ kind: "found", name: "api.acme.example.com" });
    expect(sniOf(named("x.example."))).toEqual({ kind: "found", name: "x.example" });
    expect(sniOf(named("localhost"))).toEqual({ kind: "found", name: "localhost" });
    expect(sniOf(named("xn--bcher-kva.example"))).toEqual({ kind: "found", name: "xn--bcher-kva.example" });
    const max = ["a", "b", "c"].map((c) => c.repeat(63)).join(".") + "." + "d".repeat(61); // 253 bytes
    expect(sniOf(named(max))).toEqual({ kind: "found", name: max });
    expect(sniOf(named(`${max}.`))).toEqual({ kind: "found", name: max });
  });

  test("no host_name entry, or no server_name, is none", () => {
    expect(sniOf(build(withSni(undefined)))).toEqual({ kind: "none" });
    expect(sniOf(build(withSni(sniExt([[1, ascii("opaque")]]))))).toEqual({ kind: "none" });
    expect(sniOf(build({ ...CURL13, extensions: undefined }))).toEqual({ kind: "none" });
    expect(sniOf(build({ ...CURL13, extensions: [] }))).toEqual({ kind: "none" });
  });

  test("a host_name next to an entry of another type", () => {
    const ext = sniExt([
      [7, ascii("zz")],
      [0, ascii("x.example")],
    ]);
    expect(sniOf(build(withSni(ext)))).toEqual({ kind: "found", name: "x.example" });
  });

  const bad: [string, Uint8Array | string, RegExp][] = [
    ["254 bytes", `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(62)}`, /longer than 253/],
    ["over 254 bytes (stopped before decoding)", "a.".repeat(200) + "a", /host_name of 401 bytes/],
    ["a 64-byte label", `${"a".repeat(64)}.example`, /label "a{64}" is longer than 63/],
    ["an underscore", "a_b.example", /"_" is not allowed/],
    ["a space", "a b.example", /U\+0020 is not allowed/],
    ["a NUL", "x.example\0evil.example", /U\+0000 is not allowed/],
    ["UTF-8", Uint8Array.of(0xc3, 0xa9, 0x2e, 0x78), /U\+00C3 is not allowed.*xn--/],
    ["an empty label", "a..example", /empty label/],
    ["a leading dot", ".example", /empty label/],
    ["two trailing dots", "x.example..", /ends with an empty label/],
    ["a hyphen at a label's edge", "-x.example", /starts or ends with "-"/],
    ["an IPv4 literal (RFC 6066 §3)", "10.0.0.1", /IP address/],
    ["an IPv6 literal", "::1", /":" is not allowed/],
    ["an empty host_name", "", /empty host_name/],
  ];
  for (const [what, name, reason] of bad) test(`invalid: ${what}`, () => expectInvalid(named(name), reason));

  test("invalid: two host_name entries", () => {
    const ext = sniExt([
      [0, ascii("a.example")],
      [0, ascii("b.example")],
    ]);
    expectInvalid(build(withSni(ext)), /two host_name/);
  });
  test("invalid: two server_name extensions", () => {
    expectInvalid(build(withSni(sniExt([[0, ascii("a.example")]]), [sniExt([[0, ascii("b.example")]])])), /extension 0 appears twice/);
  });
  test("invalid: any extension twice", () => {
    expectInvalid(build(withSni(sniExt([[0, ascii("a.example")]]), [{ type: 16, data: hex("000302683200") }])), /extension 16 appears twice/);
  });
  test("invalid: an empty list, an empty extension", () => {
    expectInvalid(build(withSni({ type: 0, data: hex("0000") })), /empty server_name list/);
    expectInvalid(build(withSni({ type: 0, data: new Uint8Array(0) })), /too short for its list length/);
    expectInvalid(build(withSni({ type: 0, data: hex("00") })), /too short for its list length/);
  });
});

// ------------------------------------------------------------------ malformed

describe("malformed", () => {
  const skewed = (s: Skew) => build(withSni(sniExt([[0, ascii("x.example")]])), s);

  test("every length field off by one, in each layer", () => {
    const skews: [string, Skew][] = [];
    for (const d of [-1, 1]) {
      for (const k of ["record", "handshake", "sessionId", "ciphers", "compression", "extensions"] as const) skews.push([`${k} ${d}`, { [k]: d }]);
      for (let i = 0; i < withSni(sniExt([[0, ascii("x")]])).extensions!.length; i++) skews.push([`extension #${i} ${d}`, { ext: [i, d] }]);
    }
    for (const [what, s] of skews) {
      const r = settle(skewed(s));
      expect({ what, kind: r.kind }).toEqual({ what, kind: "invalid" });
    }
    for (const d of [-1, 1]) {
      expectInvalid(build(withSni(sniExt([[0, ascii("x.example")]], d))), /server_name list length|runs past its list|cut short/);
      expectInvalid(build(withSni(sniExt([[0, ascii("x.example")]], 0, d))), /server_name entry length|cut short|not allowed/);
    }
  });

  test("a ClientHello cut anywhere (lengths consistent with the cut) is invalid, except right after compression", () => {
    const b = body(CURL13);
    const noExtensions = 2 + 32 + 1 + CURL13.sessionId.length + 2 + CURL13.ciphers.length + 1 + CURL13.compression.length;
    for (let n = 0; n < b.length; n++) {
      const r = sniOf(frame(handshake(b.subarray(0, n))));
      expect({ n, kind: r.kind }).toEqual({ n, kind: n === noExtensions ? "none" : "invalid" });
    }
  });

  const h = withSni(sniExt([[0, ascii("x.example")]]));
  const cases: [string, Uint8Array, RegExp][] = [
    ["plain HTTP", ascii("GET / HTTP/1.1\r\nHost: x.example\r\n\r\n"), /first byte 0x47 \("G": plain text, HTTP on a TLS listener\?\)/],
    ["an SSLv2-compatible hello", hex("802e0103010015000000100100800300800700c006004004008002008000000400feff"), /SSLv2/],
    ["an alert record", hex("15030100020228"), /first byte 0x15/],
    ["application data", hex("1703030005 0102030405"), /first byte 0x17/],
    ["record version 2.x", cat(hex("16"), u16(0x0201), frame(handshake(body(h))).subarray(3)), /record version 0x02/],
    ["an empty record", hex("1603010000"), /empty handshake record/],
    ["an oversized record", hex("1603014001 01"), /record length 16385 at byte 0 is over 16384/],
    ["a ServerHello", frame(handshake(body(h), {}, 2)), /handshake type 2 is not a ClientHello/],
    ["ClientHello version 2.0", build({ ...h, version: 0x0200 }), /ClientHello version 0x0200/],
    ["a session id of 33", build({ ...h, sessionId: new Uint8Array(33) }), /session id length 33 is over 32/],
    ["odd cipher suites", build({ ...h, ciphers: hex("130113") }), /cipher suites length 3/],
    ["no cipher suites", build({ ...h, ciphers: new Uint8Array(0) }), /cipher suites length 0/],
    ["no compression methods", build({ ...h, compression: new Uint8Array(0) }), /no compression methods/],
    ["a ChangeCipherSpec inside the hello", cat(frame(handshake(body(h)), [100]).subarray(0, 105), hex("140303000101")), /record type 20 at byte 105/],
    ["bytes after the hello in its record", frame(cat(handshake(body(h)), hex("0b000000"))), /ends before its record does/],
    ["a record longer than the hello, still arriving", frame(handshake(body(h)), [], { record: 1 }), /ends before its record does/],
  ];
  for (const [what, buf, reason] of cases) test(`invalid: ${what}`, () => expectInvalid(buf, reason));

  test("refused early: the first bytes decide", () => {
    expect(sniOf(ascii("G")).kind).toBe("invalid");
    expect(sniOf(hex("80")).kind).toBe("invalid");
    expect(sniOf(hex("1602")).kind).toBe("invalid");
    expect(sniOf(hex("160301000102")).kind).toBe("invalid");
    expect(sniOf(hex("16")).kind).toBe("more");
    expect(sniOf(new Uint8Array(0))).toEqual({ kind: "more" });
  });

  test("prefixes of malformed hellos never decide differently from the whole", () => {
    for (const [, buf] of cases) expectPrefixesStable(buf);
  });
});

// ------------------------------------------------------------------ never throws, never decides on bytes it lacks

describe("fuzz", () => {
  // xorshift32: the same inputs on every run.
  let seed = 0x9e3779b9;
  const rnd = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const sources = FIXTURES.map((f) => Buffer.from(f.hex, "hex"));
  const mutate = () => {
    const b = Uint8Array.from(sources[rnd(sources.length)]!);
    for (let k = 1 + rnd(4); k > 0; k--) b[rnd(b.length)] = rnd(3) === 0 ? b[rnd(b.length)]! ^ (1 << rnd(8)) : rnd(256);
    return b;
  };
  const sane = (r: SniResult) => {
    expect(["more", "found", "none", "invalid"]).toContain(r.kind);
    if (r.kind === "found") expect(r.name).toMatch(/^[a-z0-9.-]{1,253}$/);
  };

  test("20,000 mutated captures: an answer, never an exception; trailing bytes change nothing decided", () => {
    const tail = hex("1703030010 00112233445566778899aabbccddeeff");
    for (let i = 0; i < 20000; i++) {
      const b = mutate();
      const r = sniOf(b);
      sane(r);
      if (r.kind !== "more") expect(sniOf(cat(b, tail))).toEqual(r);
    }
  });

  test("300 mutated captures at every prefix: a decision taken early is the final one", () => {
    for (let i = 0; i < 300; i++) expectPrefixesStable(mutate());
  });

  test("random bytes behind a handshake record header", () => {
    for (let i = 0; i < 5000; i++) {
      const b = Uint8Array.from({ length: 5 + rnd(600) }, () => rnd(256));
      b.set([22, 3, 1]);
      sane(sniOf(b));
    }
  });
});

// ------------------------------------------------------------------ live: the installed tools, now

/** Start the fixture's command against a raw TCP server on loopback and take its first flight. */
async function captureLive(command: string): Promise<Uint8Array> {
  let got = new Uint8Array(0);
  const { promise, resolve } = Promise.withResolvers<void>();
  const server = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(sock, data) {
        got = cat(got, data);
        if (sniOf(got).kind !== "more") {
          sock.end();
          resolve();
        }
      },
    },
  });
  const argv = command.split(" ").map((a) => a.replaceAll("PORT", String(server.port)));
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  try {
    await Promise.race([promise, Bun.sleep(5000)]);
  } finally {
    proc.kill();
    await proc.exited;
    server.stop(true);
  }
  return got;
}

describe.skipIf(!Bun.which("openssl") || !Bun.which("curl"))("live capture", () => {
  test("each fixture's command, run against this machine's openssl and curl, gives the recorded answer", async () => {
    for (const f of FIXTURES) {
      const got = await captureLive(f.command);
      expect({ label: f.label, r: sniOf(got) }).toEqual({ label: f.label, r: f.expect });
    }
  }, 60_000);
});

describe("sniOf: a refusal names the byte it refused, in the buffer it was given", () => {
  test("inside the ClientHello, in one record and across records", () => {
    const old = { ...CURL13, version: 0x0200 };
    expect(sniOf(build(old))).toEqual({ kind: "invalid", status: 400, reason: "ClientHello version 0x0200 is not TLS (0x03..)", offset: 9 });
    // Handshake bytes 0-1 in the first record, the rest after a second record header: message byte 0 is handshake byte 4.
    expect(sniOf(build(old, {}, [2]))).toMatchObject({ kind: "invalid", offset: 5 + 2 + 5 + 2 });
  });

  test("record headers", () => {
    expect(sniOf(hex("170301000501"))).toMatchObject({ offset: 0 });
    expect(sniOf(hex("160201000501"))).toMatchObject({ offset: 1 });
    expect(sniOf(hex("1603010000"))).toMatchObject({ reason: "empty handshake record at byte 0", offset: 3 });
  });
});
