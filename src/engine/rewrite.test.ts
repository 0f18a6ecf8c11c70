// Unit tests for the rewrites: the stamp's protected names (a static header's client copies are dropped in every spelling an upstream reads as the same field), and response heads forwarded as received or rebuilt.
import { describe, expect, test } from "bun:test";
import { classify, Kind, parseFields } from "./fields.ts";
import { isParseError } from "./parse-error.ts";
import { parseResponseHead } from "./response-head.ts";
import { clientResponseHead, makeStamp, plainResponse } from "./rewrite.ts";

describe("makeStamp", () => {
  test("the client's copies of a static header and of the stamp are protected, \"_\" and \"-\" either way", () => {
    const stamp = makeStamp("X-Nsproxy-Tenant", "acme", { X_Plan: "gold", "X-Team": "red" }, "");
    expect(Buffer.from(stamp.bytes).toString("latin1")).toBe("X_Plan: gold\r\nX-Team: red\r\nX-Nsproxy-Tenant: acme\r\nX-Forwarded-Proto: http\r\n");
    for (const name of ["x_plan", "x-plan", "x-team", "x_team", "x-nsproxy-tenant", "x_nsproxy_tenant", "x-forwarded_for"]) {
      expect([name, classify(name, stamp.protectedNames)]).toEqual([name, Kind.Protected]);
    }
    expect(classify("x-planet", stamp.protectedNames)).toBe(Kind.Other);
    expect(classify("host", stamp.protectedNames)).toBe(Kind.Host);
  });
});

describe("plainResponse", () => {
  const statusLine = (status: number, minor?: number) => new TextDecoder().decode(plainResponse(status, "x", minor)).split("\r\n")[0];

  test("every status nsproxy answers itself has its own reason phrase", () => {
    expect(statusLine(404)).toBe("HTTP/1.1 404 Not Found");
    expect(statusLine(404, 0)).toBe("HTTP/1.0 404 Not Found");
    expect(statusLine(501)).toBe("HTTP/1.1 501 Not Implemented");
    for (const status of [400, 404, 405, 408, 414, 431, 500, 501, 502, 503, 504, 505]) expect(statusLine(status)).not.toMatch(/^HTTP\/1\.1 \d{3} Error$/);
  });
});

describe("client response head", () => {
  const received = (text: string) => new Uint8Array(Buffer.from(text, "latin1"));
  const parsed = (bytes: Uint8Array, method = "GET") => {
    const s = Buffer.from(bytes).toString("latin1");
    const end = s.indexOf("\r\n\r\n") + 4;
    const head = parseResponseHead(s.slice(0, end), end, method, 100);
    if (isParseError(head)) throw new Error(head.reason);
    return { s: s.slice(0, end), head };
  };

  test("a head with nothing to drop or add goes as received: a view of the same bytes, no copy", () => {
    const bytes = received("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok");
    const { s, head } = parsed(bytes);
    const out = clientResponseHead(bytes, s, head, "");
    expect(out.buffer).toBe(bytes.buffer);
    expect(Buffer.from(out).toString("latin1")).toBe(s);
  });

  test("a head with a hop-by-hop field, or a Connection to add, is rebuilt", () => {
    for (const [text, connection, want] of [
      ["HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n", "", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
      ["HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", "", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
      ["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "close", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"],
      ["HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", "", "HTTP/1.1 204 No Content\r\n\r\n"],
    ] as const) {
      const bytes = received(text);
      const { s, head } = parsed(bytes);
      const out = clientResponseHead(bytes, s, head, connection);
      expect(out.buffer).not.toBe(bytes.buffer);
      expect(Buffer.from(out).toString("latin1")).toBe(want);
    }
  });
});

describe("field names classified in place", () => {
  test("any case, the stamp's names and look-alikes, Proxy-*, and names of a special length that are not special", () => {
    const stamp = makeStamp("X-Nsproxy-Tenant", "acme", { X_Plan: "gold" }, "");
    const names = ["HOST", "Content-Length", "transfer-ENCODING", "Connection", "Upgrade", "keep-alive", "TE", "Proxy-Authorization", "X-NSPROXY-TENANT", "x_nsproxy_tenant", "X-Plan", "X-Forwarded-For", "User-Agent", "Hist", "Te2", "x-forwarded-prot0"];
    const head = `${names.map((n) => `${n}: v\r\n`).join("")}\r\n`;
    const f = parseFields(head, 0, head.length, 100, stamp.protectedNames);
    if (isParseError(f)) throw new Error(f.reason);
    expect(names.map((n, i) => [n, f.kind[i]])).toEqual(names.map((n) => [n, classify(n.toLowerCase(), stamp.protectedNames)]));
    expect(f.kind.slice(0, names.length)).toEqual([Kind.Host, Kind.ContentLength, Kind.TransferEncoding, Kind.Connection, Kind.Upgrade, Kind.HopByHop, Kind.HopByHop, Kind.HopByHop, Kind.Protected, Kind.Protected, Kind.Protected, Kind.Protected, Kind.Other, Kind.Other, Kind.Other, Kind.Other]);
  });
});
