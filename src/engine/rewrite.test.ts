// Unit tests for the stamp's protected names: a static header's client copies are dropped in every spelling an upstream reads as the same field.
import { describe, expect, test } from "bun:test";
import { classify, Kind } from "./fields.ts";
import { makeStamp, plainResponse } from "./rewrite.ts";

describe("makeStamp", () => {
  test("the client's copies of a static header and of the stamp are protected, \"_\" and \"-\" either way", () => {
    const stamp = makeStamp("X-Nsproxy-Tenant", "acme", { X_Plan: "gold", "X-Team": "red" }, "");
    expect(stamp.text).toBe("X_Plan: gold\r\nX-Team: red\r\nX-Nsproxy-Tenant: acme\r\nX-Forwarded-Proto: http\r\n");
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
