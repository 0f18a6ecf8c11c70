// PROXY v2 header: exact bytes against the layout of HAProxy's doc/proxy-protocol.txt §2.2 and the vectors of its
// reg-tests (reg-tests/connection/proxy_protocol_tlv_validation.vtc, reg-tests/stream/unique-id-from-proxy.vtc),
// address handling, round trips, and the strict parser on malformed input.
import { describe, expect, test } from "bun:test";
import { crc32c, formatIp, parseProxyV2 } from "../../test/helpers/proxy-v2-decode.ts";
import {
  PP2_SIGNATURE,
  PP2_TYPE_AUTHORITY,
  PP2_TYPE_CRC32C,
  PP2_TYPE_NETNS,
  PP2_TYPE_SSL,
  PP2_TYPE_UNIQUE_ID,
  parseIp,
  ProxyV2Error,
  type ProxyV2Info,
  proxyV2Header,
} from "./proxy-v2.ts";

/** "0d 0a ..." → bytes (spaces and newlines ignored). */
const hex = (s: string) => Uint8Array.from((s.replace(/\s+/g, "").match(/../g) ?? []).map((b) => parseInt(b, 16)));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const SIG = "0d0a0d0a000d0a515549540a";

describe("proxyV2Header: exact bytes", () => {
  test("TCP over IPv4, NETNS only", () => {
    const h = proxyV2Header({ srcAddr: "192.0.2.1", srcPort: 56324, dstAddr: "198.51.100.7", dstPort: 443, netns: "t1" });
    expect(toHex(h)).toBe(
      toHex(
        hex(`${SIG} 21 11 0011
             c0000201 c6336407 dc04 01bb
             30 0002 7431`),
      ),
    );
    expect(h.length).toBe(16 + 12 + 3 + 2);
  });

  test("TCP over IPv6, NETNS only", () => {
    const h = proxyV2Header({ srcAddr: "2001:db8::1", srcPort: 1234, dstAddr: "2001:db8::2", dstPort: 80, netns: "a" });
    expect(toHex(h)).toBe(
      toHex(
        hex(`${SIG} 21 21 0028
             20010db8000000000000000000000001
             20010db8000000000000000000000002
             04d2 0050
             30 0001 61`),
      ),
    );
  });

  test("TLS listener: SSL TLV (client=SSL, verify=0, version sub-TLV) before NETNS, as HAProxy orders them", () => {
    const h = proxyV2Header({ srcAddr: "10.0.0.5", srcPort: 40000, dstAddr: "169.254.169.254", dstPort: 443, netns: "acme", tlsVersion: "TLSv1.3" });
    expect(toHex(h)).toBe(
      toHex(
        cat(
          hex(`${SIG} 21 11 ${(12 + 18 + 7).toString(16).padStart(4, "0")}
               0a000005 a9fea9fe 9c40 01bb
               20 000f 01 00000000 21 0007`),
          ascii("TLSv1.3"),
          hex("30 0004"),
          ascii("acme"),
        ),
      ),
    );
  });

  test("the reg-test's addresses (127.0.0.1:42 → 127.0.0.1:1337) give the reg-test's address block", () => {
    const h = proxyV2Header({ srcAddr: "127.0.0.1", srcPort: 42, dstAddr: "127.0.0.1", dstPort: 1337, netns: "x" });
    expect(toHex(h.subarray(0, 28))).toBe(toHex(hex(`${SIG} 21 11 0010 7F000001 7F000001 002A 0539`)));
  });

  test("an empty tlsVersion is no TLS (no SSL TLV)", () => {
    const a = proxyV2Header({ srcAddr: "127.0.0.1", srcPort: 1, dstAddr: "127.0.0.1", dstPort: 2, netns: "n", tlsVersion: "" });
    const b = proxyV2Header({ srcAddr: "127.0.0.1", srcPort: 1, dstAddr: "127.0.0.1", dstPort: 2, netns: "n" });
    expect(toHex(a)).toBe(toHex(b));
  });

  test("the per-tenant TLV cache cannot be fooled into skipping validation", () => {
    const base = { srcAddr: "127.0.0.1", srcPort: 1, dstAddr: "127.0.0.1", dstPort: 2 };
    // cached: ("a", "b") and ("a\0b"-like keys of the old scheme), then the inputs whose keys they could have been
    proxyV2Header({ ...base, netns: "a", tlsVersion: "b" });
    proxyV2Header({ ...base, netns: "ab" });
    for (const netns of ["a\0b", "a\nb", "\0a", "\0ab"]) expect(() => proxyV2Header({ ...base, netns })).toThrow(ProxyV2Error);
    expect(() => proxyV2Header({ ...base, netns: "a\0b", tlsVersion: "c" })).toThrow(ProxyV2Error);
  });

  test("each call returns a fresh buffer (the tail cache is never handed out)", () => {
    const info: ProxyV2Info = { srcAddr: "127.0.0.1", srcPort: 1, dstAddr: "127.0.0.1", dstPort: 2, netns: "n", tlsVersion: "TLSv1.2" };
    const a = proxyV2Header(info);
    a.fill(0);
    const b = proxyV2Header(info);
    expect(parseProxyV2(b)?.netns).toBe("n");
    expect(parseProxyV2(b)?.ssl?.version).toBe("TLSv1.2");
  });
});

describe("proxyV2Header: address families", () => {
  const base = { srcPort: 5000, dstPort: 80, netns: "t" };
  const fam = (h: Uint8Array) => h[13];

  test("IPv4-mapped IPv6 on both ends → IPv4 block, same bytes as plain IPv4", () => {
    const mapped = proxyV2Header({ ...base, srcAddr: "::ffff:10.0.0.5", dstAddr: "::FFFF:10.0.0.1" });
    const plain = proxyV2Header({ ...base, srcAddr: "10.0.0.5", dstAddr: "10.0.0.1" });
    expect(fam(mapped)).toBe(0x11);
    expect(toHex(mapped)).toBe(toHex(plain));
  });

  test("mapped on one end, plain IPv4 on the other → IPv4 block", () => {
    const h = proxyV2Header({ ...base, srcAddr: "::ffff:10.0.0.5", dstAddr: "10.0.0.1" });
    expect(fam(h)).toBe(0x11);
    expect(parseProxyV2(h)).toMatchObject({ srcAddr: "10.0.0.5", dstAddr: "10.0.0.1" });
  });

  test("mapped hex form (::ffff:a00:5) is IPv4 too", () => {
    const h = proxyV2Header({ ...base, srcAddr: "::ffff:a00:5", dstAddr: "10.0.0.1" });
    expect(parseProxyV2(h)).toMatchObject({ family: "TCP4", srcAddr: "10.0.0.5" });
  });

  test("mixed families → IPv6 block, the IPv4 end IPv4-mapped", () => {
    const h = proxyV2Header({ ...base, srcAddr: "10.0.0.5", dstAddr: "fd00::1" });
    expect(fam(h)).toBe(0x21);
    expect(toHex(h.subarray(16, 48))).toBe("00000000000000000000ffff0a000005" + "fd000000000000000000000000000001");
    expect(parseProxyV2(h)).toMatchObject({ family: "TCP6", srcAddr: "::ffff:10.0.0.5", dstAddr: "fd00::1" });
    const r = proxyV2Header({ ...base, srcAddr: "::1", dstAddr: "::ffff:127.0.0.1" });
    expect(parseProxyV2(r)).toMatchObject({ family: "TCP6", srcAddr: "::1", dstAddr: "::ffff:127.0.0.1" });
  });

  test("zone ids are dropped", () => {
    const a = proxyV2Header({ ...base, srcAddr: "fe80::1%lo", dstAddr: "fe80::2%2" });
    const b = proxyV2Header({ ...base, srcAddr: "fe80::1", dstAddr: "fe80::2" });
    expect(toHex(a)).toBe(toHex(b));
  });

  test("unparseable addresses, ports and names throw ProxyV2Error, naming the value", () => {
    const ok: ProxyV2Info = { srcAddr: "127.0.0.1", srcPort: 1, dstAddr: "127.0.0.1", dstPort: 2, netns: "t" };
    const bads: Partial<ProxyV2Info>[] = [
      { srcAddr: "localhost" },
      { srcAddr: "" },
      { srcAddr: "1.2.3" },
      { srcAddr: "1.2.3.4.5" },
      { srcAddr: "256.1.1.1" },
      { srcAddr: "01.2.3.4" },
      { srcAddr: "1.2.3.4%eth0" },
      { srcAddr: " 1.2.3.4" },
      { dstAddr: "[::1]" },
      { dstAddr: "::1::2" },
      { dstAddr: "1:2:3:4:5:6:7:8:9" },
      { dstAddr: "1:2:3:4:5:6:7" },
      { dstAddr: "12345::1" },
      { dstAddr: ":1" },
      { dstAddr: "1:" },
      { dstAddr: "fe80::1%" },
      { dstAddr: "::ffff:1.2.3.4:5" },
      { dstAddr: "1:2:3:4:5:6:7:1.2.3.4" },
      { dstAddr: "unix:/run/x.sock" },
      { srcPort: -1 },
      { srcPort: 65536 },
      { dstPort: 1.5 },
      { dstPort: Number.NaN },
      { netns: "" },
      { netns: "tenant\n" },
      { netns: "ténant" },
      { tlsVersion: "TLSv1.3\u0000" },
      { netns: "x".repeat(70_000) },
    ];
    for (const b of bads) {
      let err: unknown;
      try {
        proxyV2Header({ ...ok, ...b });
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(b).slice(0, 80)).toBeInstanceOf(ProxyV2Error);
    }
    expect(() => proxyV2Header({ ...ok, srcAddr: "localhost" })).toThrow(/source address "localhost" is not an IPv4 or IPv6 address/);
  });
});

describe("IP literals", () => {
  const bytes = (s: string) => {
    const b = new Uint8Array(16);
    return parseIp(s, b) ? toHex(b) : undefined;
  };

  test("accepted forms", () => {
    expect(bytes("::")).toBe("0".repeat(32));
    expect(bytes("::1")).toBe("0".repeat(31) + "1");
    expect(bytes("1::")).toBe("0001" + "0".repeat(28));
    expect(bytes("1:2:3:4:5:6:7::")).toBe("00010002000300040005000600070000");
    expect(bytes("::2:3:4:5:6:7:8")).toBe("00000002000300040005000600070008");
    expect(bytes("1:2:3:4:5:6:7:8")).toBe("00010002000300040005000600070008");
    expect(bytes("ABCD:ef01::0")).toBe("abcdef01" + "0".repeat(24));
    expect(bytes("::ffff:1.2.3.4")).toBe("00000000000000000000ffff01020304");
    expect(bytes("64:ff9b::192.0.2.33")).toBe("0064ff9b0000000000000000c0000221");
    expect(bytes("1:2:3:4:5:6:1.2.3.4")).toBe("00010002000300040005000601020304");
    expect(bytes("0.0.0.0")).toBe("00000000000000000000ffff00000000");
    expect(bytes("255.255.255.255")).toBe("00000000000000000000ffffffffffff");
  });

  test("formatIp is RFC 5952", () => {
    const f = (s: string) => formatIp(hex(bytes(s)!));
    expect(f("2001:0db8:0000:0000:0000:0000:0000:0001")).toBe("2001:db8::1");
    expect(f("2001:db8:0:1:1:1:1:1")).toBe("2001:db8:0:1:1:1:1:1"); // one zero group: not compressed
    expect(f("2001:0:0:1:0:0:0:1")).toBe("2001:0:0:1::1"); // the longest run
    expect(f("2001:db8:0:0:1:0:0:1")).toBe("2001:db8::1:0:0:1"); // the first of equal runs
    expect(f("::ffff:10.0.0.1")).toBe("::ffff:10.0.0.1");
    expect(formatIp(Uint8Array.of(10, 0, 0, 1))).toBe("10.0.0.1");
  });

  test("random addresses: format → parse is the identity, and WHATWG URL serializes them the same way", () => {
    for (let i = 0; i < 2000; i++) {
      const b = new Uint8Array(16);
      crypto.getRandomValues(b);
      // make zero runs likely
      for (let k = 0; k < 8; k++) if (Math.random() < 0.4) b[2 * k] = b[2 * k + 1] = 0;
      if (i % 50 === 0) b.fill(0, 0, 10).fill(0xff, 10, 12);
      const s = formatIp(b);
      expect(bytes(s)).toBe(toHex(b));
      const viaUrl = new URL(`http://[${s}]/`).hostname.slice(1, -1);
      expect(bytes(viaUrl)).toBe(toHex(b));
      if (!s.includes(".")) expect(viaUrl).toBe(s);
    }
  });
});

describe("parseProxyV2", () => {
  test("round trips: v4, v6, mapped, mixed, TLS, a 64-character tenant", () => {
    const name64 = `t${"abcdefghijklmnopqrstuvwxyz0123456789._-".repeat(2)}`.slice(0, 64);
    expect(name64.length).toBe(64);
    const cases: [ProxyV2Info, string, string, string][] = [
      [{ srcAddr: "127.0.0.1", srcPort: 33333, dstAddr: "127.0.0.1", dstPort: 8080, netns: "a" }, "TCP4", "127.0.0.1", "127.0.0.1"],
      [{ srcAddr: "::1", srcPort: 1, dstAddr: "::1", dstPort: 65535, netns: "b" }, "TCP6", "::1", "::1"],
      [{ srcAddr: "::ffff:10.1.2.3", srcPort: 0, dstAddr: "::ffff:169.254.169.254", dstPort: 80, netns: "c" }, "TCP4", "10.1.2.3", "169.254.169.254"],
      [{ srcAddr: "10.1.2.3", srcPort: 9, dstAddr: "fd00:0:0::7", dstPort: 80, netns: "d" }, "TCP6", "::ffff:10.1.2.3", "fd00::7"],
      [{ srcAddr: "fe80::1%lo", srcPort: 9, dstAddr: "fe80::2", dstPort: 443, netns: name64, tlsVersion: "TLSv1.3" }, "TCP6", "fe80::1", "fe80::2"],
      [{ srcAddr: "192.168.0.1", srcPort: 9, dstAddr: "192.168.0.2", dstPort: 443, netns: name64, tlsVersion: "TLSv1.2" }, "TCP4", "192.168.0.1", "192.168.0.2"],
    ];
    for (const [info, family, src, dst] of cases) {
      const h = proxyV2Header(info);
      const payload = ascii("GET / HTTP/1.1\r\n\r\n");
      const p = parseProxyV2(cat(h, payload));
      expect(p).toBeDefined();
      expect(p!.headerLength).toBe(h.length);
      expect(p).toMatchObject({ command: "PROXY", family, srcAddr: src, srcPort: info.srcPort, dstAddr: dst, dstPort: info.dstPort, netns: info.netns });
      if (info.tlsVersion) {
        expect(p!.ssl).toEqual({ client: 1, verify: 0, version: info.tlsVersion, subTlvs: [{ type: 0x21, value: ascii(info.tlsVersion) }] });
        expect(p!.tlvs.map((t) => t.type)).toEqual([PP2_TYPE_SSL, PP2_TYPE_NETNS]);
      } else {
        expect(p!.ssl).toBeUndefined();
        expect(p!.tlvs.map((t) => t.type)).toEqual([PP2_TYPE_NETNS]);
      }
      // The 64-character tenant with TLS over IPv6 stays far below an MSS (the spec's "sent at once").
      expect(h.length).toBeLessThan(536);
    }
  });

  test("the reg-test's valid header: AUTHORITY TLV, and bytes after the header are not part of it", () => {
    const h = hex(`${SIG} 21 11 0014 7F000001 7F000001 002A 0539 02 0005 3132333435`);
    const after = hex("02 0005 3534333231");
    const p = parseProxyV2(cat(h, after))!;
    expect(p).toMatchObject({ command: "PROXY", family: "TCP4", srcAddr: "127.0.0.1", srcPort: 42, dstAddr: "127.0.0.1", dstPort: 1337, headerLength: 36 });
    expect(p.tlvs).toEqual([{ type: PP2_TYPE_AUTHORITY, value: ascii("12345") }]);
    const u = parseProxyV2(hex(`${SIG} 21 11 0014 7F000001 7F000001 002A 0539 05 0005 3132333435`))!;
    expect(u.tlvs).toEqual([{ type: PP2_TYPE_UNIQUE_ID, value: ascii("12345") }]);
  });

  test("the reg-test's malformed headers: a TLV past the header, stray bytes after the last TLV", () => {
    expect(() => parseProxyV2(hex(`${SIG} 21 11 0014 7F000001 7F000001 002A 0539 02 000A 31323334353132333435`))).toThrow(/runs .* past its block/);
    expect(() => parseProxyV2(hex(`${SIG} 21 11 0014 7F000001 7F000001 002A 0539 02 0004 31323334 00`))).toThrow(/stray byte/);
  });

  test("incomplete input is undefined at every cut, never an error", () => {
    const h = proxyV2Header({ srcAddr: "::1", srcPort: 1, dstAddr: "::1", dstPort: 2, netns: "tenant", tlsVersion: "TLSv1.3" });
    for (let n = 0; n < h.length; n++) expect(parseProxyV2(h.subarray(0, n))).toBeUndefined();
    expect(parseProxyV2(h)).toBeDefined();
  });

  test("wrong signature, version, command or family throw, even before the header is complete", () => {
    expect(() => parseProxyV2(ascii("GET / HTTP/1.1\r\n\r\n"))).toThrow(/signature/);
    expect(() => parseProxyV2(ascii("GET"))).toThrow(/signature/);
    expect(() => parseProxyV2(ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"))).toThrow(/signature/); // v1 is not accepted
    const good = proxyV2Header({ srcAddr: "127.0.0.1", srcPort: 1, dstAddr: "127.0.0.1", dstPort: 2, netns: "t" });
    const mut = (at: number, v: number) => {
      const c = good.slice();
      c[at] = v;
      return c;
    };
    expect(() => parseProxyV2(mut(4, 0x20))).toThrow(/signature/);
    expect(() => parseProxyV2(mut(11, 0x0d).subarray(0, 12))).toThrow(/signature/);
    expect(() => parseProxyV2(mut(12, 0x11))).toThrow(/version 1/);
    expect(() => parseProxyV2(mut(12, 0x22).subarray(0, 13))).toThrow(/command 2/);
    expect(() => parseProxyV2(mut(13, 0x13).subarray(0, 14))).toThrow(/family/);
    expect(() => parseProxyV2(mut(13, 0x41))).toThrow(/family/);
  });

  test("a length too short for the family's addresses throws; a length beyond the buffer waits", () => {
    expect(() => parseProxyV2(hex(`${SIG} 21 11 000b 7F000001 7F000001 002A 05`))).toThrow(/shorter than the 12/);
    expect(() => parseProxyV2(hex(`${SIG} 21 21 000c 7F000001 7F000001 002A 0539`))).toThrow(/shorter than the 36/);
    expect(parseProxyV2(hex(`${SIG} 21 11 ffff 7F000001 7F000001 002A 0539`))).toBeUndefined();
  });

  test("TLVs overflowing their block throw: a TLV, a 2-byte TLV header, the SSL fixed part, an SSL sub-TLV", () => {
    const v4 = (tlvs: string) => {
      const t = hex(tlvs);
      return cat(hex(`${SIG} 21 11 ${(12 + t.length).toString(16).padStart(4, "0")} 7F000001 7F000001 002A 0539`), t);
    };
    expect(() => parseProxyV2(v4("30 0005 616263"))).toThrow(/TLV 0x30 of 5 bytes runs 2 byte\(s\) past/);
    expect(() => parseProxyV2(v4("30 0001 61 30 00"))).toThrow(/stray/);
    expect(() => parseProxyV2(v4("20 0004 01000000"))).toThrow(/SSL TLV of 4 bytes/);
    expect(() => parseProxyV2(v4("20 0009 01 00000000 21 0007 54"))).toThrow(/SSL sub-TLV 0x21 of 7 bytes runs/);
    expect(() => parseProxyV2(v4("30 0001 61 30 0001 62"))).toThrow(/two NETNS/);
    expect(() => parseProxyV2(v4("20 0005 0100000000 20 0005 0100000000"))).toThrow(/two SSL TLVs/);
    expect(() => parseProxyV2(v4("30 0002 c3a9"))).toThrow(/not US-ASCII/);
    // An SSL TLV without sub-TLVs (HAProxy's `proxy-v2-options ssl` on a plain connection) is fine.
    expect(parseProxyV2(v4("20 0005 0000000000"))!.ssl).toEqual({ client: 0, verify: 0, subTlvs: [] });
    // Unknown and empty TLVs are kept.
    expect(parseProxyV2(v4("e0 0000 f0 0001 ff"))!.tlvs).toEqual([
      { type: 0xe0, value: new Uint8Array(0) },
      { type: 0xf0, value: Uint8Array.of(0xff) },
    ]);
  });

  test("CRC32C: the RFC 3720 check value, a correct TLV verifies, a flipped bit throws", () => {
    expect(crc32c(ascii("123456789"))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
    const head = hex(`${SIG} 21 11 0013 7F000001 7F000001 002A 0539 03 0004 00000000`);
    const c = crc32c(head);
    head.set([c >>> 24, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff], 31);
    expect(parseProxyV2(head)).toMatchObject({ crc32c: c, tlvs: [{ type: PP2_TYPE_CRC32C }] });
    head[16]! ^= 1;
    expect(() => parseProxyV2(head)).toThrow(/CRC32C/);
  });

  test("LOCAL: any length and family, block skipped; UNSPEC with PROXY: no addresses", () => {
    expect(parseProxyV2(hex(`${SIG} 20 00 0000`))).toEqual({ command: "LOCAL", family: "UNSPEC", tlvs: [], headerLength: 16 });
    expect(parseProxyV2(hex(`${SIG} 20 11 0000`))).toMatchObject({ command: "LOCAL", headerLength: 16 });
    expect(parseProxyV2(hex(`${SIG} 20 00 0003 aabbcc`))).toMatchObject({ command: "LOCAL", headerLength: 19 });
    expect(parseProxyV2(hex(`${SIG} 21 00 0000`))).toEqual({ command: "PROXY", family: "UNSPEC", tlvs: [], headerLength: 16 });
  });

  test("UNIX stream addresses are NUL-terminated paths", () => {
    const a = new Uint8Array(216);
    a.set(ascii("/run/client.sock"), 0);
    a.set(ascii("/run/server.sock"), 108);
    const p = parseProxyV2(cat(hex(`${SIG} 21 31 00d8`), a))!;
    expect(p).toMatchObject({ family: "UNIX_STREAM", srcAddr: "/run/client.sock", dstAddr: "/run/server.sock", tlvs: [] });
    expect(p.srcPort).toBeUndefined();
  });

  test("the signature constant is the spec's", () => {
    expect(toHex(PP2_SIGNATURE)).toBe(SIG);
    expect(Buffer.from(PP2_SIGNATURE.subarray(7)).toString("latin1")).toBe("QUIT\n");
  });
});
