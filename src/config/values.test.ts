// Unit tests for the single-value parsers: accepted spellings, normalisation, and what error messages show.
import { describe, expect, test } from "bun:test";
import {
  checkHeaderName,
  isValidHeaderName,
  isValidHeaderValue,
  isValidTenantName,
  parseDuration,
  parseListen,
  parseInteger,
  parseNetnsRef,
  parseUpstream,
  parseMode,
  parseProxyProtocol,
  parseTlsPath,
  parseWorkers,
} from "./values.ts";

describe("parseListen", () => {
  test("IPv4 and bracketed IPv6", () => {
    expect(parseListen("127.0.0.1:8080")).toEqual({ host: "127.0.0.1", port: 8080, text: "127.0.0.1:8080" });
    expect(parseListen("[::1]:1")).toEqual({ host: "::1", port: 1, text: "[::1]:1" });
    expect(parseListen("0.0.0.0:65535").port).toBe(65535);
  });

  test("errors show the bad value and a good one", () => {
    expect(() => parseListen("localhost:8080")).toThrow(/"localhost" is not an IPv4 literal.*127\.0\.0\.1:8080/);
    expect(() => parseListen("::1:8080")).toThrow(/put IPv6 addresses in brackets/);
    expect(() => parseListen("127.0.0.1")).toThrow(/"127.0.0.1" is not HOST:PORT/);
    expect(() => parseListen("[127.0.0.1]:80")).toThrow(/not an IPv6 literal/);
    expect(() => parseListen("127.0.0.1:0")).toThrow(/port "0" is not an integer from 1 to 65535/);
    expect(() => parseListen("127.0.0.1:65536")).toThrow(/port "65536"/);
    expect(() => parseListen("127.0.0.1:80a")).toThrow(/port "80a"/);
    expect(() => parseListen("")).toThrow(/"" is not HOST:PORT/);
  });
});

describe("parseUpstream", () => {
  test("http and https with and without a prefix", () => {
    expect(parseUpstream("http://127.0.0.1:9000")).toEqual({ origin: "http://127.0.0.1:9000", prefix: "", text: "http://127.0.0.1:9000" });
    expect(parseUpstream("http://127.0.0.1:9000/")).toMatchObject({ prefix: "" });
    expect(parseUpstream("http://127.0.0.1:9000/api/v1/")).toMatchObject({ origin: "http://127.0.0.1:9000", prefix: "/api/v1" });
    expect(parseUpstream("https://api.internal/v1")).toMatchObject({ origin: "https://api.internal", prefix: "/v1" });
    expect(parseUpstream("https://api.internal:8443")).toMatchObject({ origin: "https://api.internal:8443" });
    expect(parseUpstream("http://[::1]:9000/x")).toMatchObject({ origin: "http://[::1]:9000", prefix: "/x" });
    expect(parseUpstream("http://backend")).toMatchObject({ origin: "http://backend", prefix: "" });
    expect(parseUpstream("http://127.0.0.1:9000").unix).toBeUndefined();
  });

  test("unix sockets, nginx spelling", () => {
    expect(parseUpstream("unix:/run/app.sock")).toEqual({ origin: "http://localhost", prefix: "", unix: "/run/app.sock", text: "unix:/run/app.sock" });
    expect(parseUpstream("unix:/run/app.sock:/v1/")).toMatchObject({ unix: "/run/app.sock", prefix: "/v1" });
    // The prefix starts at the last ":/".
    expect(parseUpstream("unix:/run/a:/b.sock:/p")).toMatchObject({ unix: "/run/a:/b.sock", prefix: "/p" });
    expect(parseUpstream("unix:/run/app.sock:/")).toMatchObject({ unix: "/run/app.sock", prefix: "" });
  });

  test("rejections name the problem and show the input", () => {
    expect(() => parseUpstream("ftp://x:1")).toThrow(/upstream "ftp:\/\/x:1" is not an http:\/\/, https:\/\/ or unix: address; write it like "http:\/\/127.0.0.1:9000"/);
    expect(() => parseUpstream("http://x:1/a?b=1")).toThrow(/query string/);
    expect(() => parseUpstream("http://x:1/a#f")).toThrow(/fragment/);
    expect(() => parseUpstream("http://u:p@x:1")).toThrow(/user information/);
    expect(() => parseUpstream("http:///x")).toThrow(/has no host/);
    expect(() => parseUpstream("http://x:0")).toThrow(/port "0"/);
    expect(() => parseUpstream("http://x:99999")).toThrow(/port "99999"/);
    expect(() => parseUpstream("127.0.0.1:9000")).toThrow(/"127.0.0.1:9000" is not an http/);
    expect(() => parseUpstream("unix:run/app.sock")).toThrow(/absolute socket path/);
    expect(() => parseUpstream("unix:/run/")).toThrow(/directory/);
    expect(() => parseUpstream(`unix:/${"s".repeat(120)}`)).toThrow(/longer than 107 bytes/);
  });
});

describe("parseDuration", () => {
  test("numbers are seconds, strings carry a unit", () => {
    expect(parseDuration(30)).toBe(30_000);
    expect(parseDuration(0)).toBe(0);
    expect(parseDuration(0.25)).toBe(250);
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("2m")).toBe(120_000);
    expect(parseDuration("1h")).toBe(3_600_000);
  });

  test("rejects everything else", () => {
    expect(() => parseDuration(-1)).toThrow(/duration -1 is not a non-negative number of seconds; write it like 30, "500ms"/);
    expect(() => parseDuration("30")).toThrow(/duration "30" is not a number with a unit/);
    expect(() => parseDuration("5 min")).toThrow(/"5 min"/);
    expect(() => parseDuration("-1s")).toThrow(/"-1s"/);
    expect(() => parseDuration(true)).toThrow(/duration true/);
    expect(() => parseDuration(["1s"])).toThrow(/an array/);
    expect(() => parseDuration(Infinity)).toThrow(/Infinity/);
    // setTimeout would fire at once for anything longer.
    expect(() => parseDuration("600h")).toThrow(/longer than the maximum/);
  });
});

describe("parseNetnsRef", () => {
  test("bare names live under /run/netns", () => {
    expect(parseNetnsRef("acme")).toEqual({ name: "acme", netns: "/run/netns/acme" });
  });

  test("absolute paths take the base name", () => {
    expect(parseNetnsRef("/run/netns/x")).toEqual({ name: "x", netns: "/run/netns/x" });
    expect(parseNetnsRef("/var/run/docker/netns/1a2b")).toEqual({ name: "1a2b", netns: "/var/run/docker/netns/1a2b" });
    expect(parseNetnsRef("/proc/1234/ns/net")).toEqual({ name: "pid-1234", netns: "/proc/1234/ns/net" });
  });

  test("TENANT=REF chooses the name", () => {
    expect(parseNetnsRef("web=acme")).toEqual({ name: "web", netns: "/run/netns/acme" });
    expect(parseNetnsRef("web=/proc/7/ns/net")).toEqual({ name: "web", netns: "/proc/7/ns/net" });
    expect(parseNetnsRef("web=/srv/ns=1")).toEqual({ name: "web", netns: "/srv/ns=1" });
  });

  test("errors", () => {
    expect(() => parseNetnsRef("./x")).toThrow(/"\.\/x" is a relative path/);
    expect(() => parseNetnsRef("a/b")).toThrow(/relative path/);
    expect(() => parseNetnsRef("/proc/1234/task/1/ns/net")).toThrow(/only \/proc\/PID\/ns\/net/);
    expect(() => parseNetnsRef("/proc/self/ns/net")).toThrow(/only \/proc\/PID\/ns\/net/);
    expect(() => parseNetnsRef("")).toThrow(/empty/);
    expect(() => parseNetnsRef("-bad")).toThrow(/tenant name "-bad"/);
    expect(() => parseNetnsRef("b@d=acme")).toThrow(/tenant name "b@d"/);
    expect(() => parseNetnsRef("/run/netns/")).toThrow(/directory/);
    expect(() => parseNetnsRef("/run/netns/with space")).toThrow(/"with space".*name the tenant yourself: "acme=\/run\/netns\/with space"/);
  });
});

describe("name and value checks", () => {
  test("tenant names", () => {
    for (const ok of ["a", "acme", "A-1.b_c", "9", "x".repeat(64)]) expect(isValidTenantName(ok)).toBe(true);
    for (const bad of ["", "-a", ".a", "_a", "a/b", "a b", "x".repeat(65), "é"]) expect(isValidTenantName(bad)).toBe(false);
  });

  test("header names are RFC 9110 tokens", () => {
    for (const ok of ["X-Env", "x_y", "a!#$%&'*+-.^_`|~1"]) expect(isValidHeaderName(ok)).toBe(true);
    for (const bad of ["", "X Env", "X:Env", "X\"", "X(", "é"]) expect(isValidHeaderName(bad)).toBe(false);
  });

  test("header values: no CR, LF or NUL", () => {
    for (const ok of ["", "prod", "a b\tc", "caf\u00e9", "~!"]) expect(isValidHeaderValue(ok)).toBe(true);
    for (const bad of ["a\r\nb", "a\nb", "a\0", "\x7f", "\u20ac"]) expect(isValidHeaderValue(bad)).toBe(false);
  });

  test("managed headers are refused", () => {
    expect(checkHeaderName("X-Tenant", "tenant_header")).toBe("X-Tenant");
    expect(() => checkHeaderName("Host", "static header")).toThrow(/static header "Host" is a header the proxy manages/);
    expect(() => checkHeaderName("Host", "tenant_header")).toThrow(/tenant_header "Host" is a header the proxy manages/);
    for (const h of ["Connection", "keep-alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Authorization", "Content-Length"]) {
      expect(() => checkHeaderName(h, "static header")).toThrow(/manages itself/);
    }
    expect(() => checkHeaderName("X Y", "static header")).toThrow(/static header "X Y" is not a valid header name/);
  });

  test("workers", () => {
    expect(parseWorkers(4)).toBe(4);
    expect(parseWorkers("256")).toBe(256);
    for (const bad of [0, 257, 1.5, "two", "", true]) expect(() => parseWorkers(bad)).toThrow(/not an integer from 1 to 256/);
  });

  test("parseInteger: numbers and digit strings in range; the message names the setting, the range and an example", () => {
    expect(parseInteger(8, "max_headers", 8, 10_000, 100)).toBe(8);
    expect(parseInteger(" 10000 ", "max_headers", 8, 10_000, 100)).toBe(10_000);
    expect(() => parseInteger("1e3", "max_connections", 1, 1_000_000, 1000)).toThrow('max_connections "1e3" is not an integer from 1 to 1000000, like 1000');
    for (const bad of [7, 10_001, 9.5, "-8", "", null]) expect(() => parseInteger(bad, "max_headers", 8, 10_000, 100)).toThrow(/not an integer from 8 to 10000, like 100/);
  });
});

describe("schemes, TCP upstreams, modes, certificate paths", () => {
  test("https:// listeners carry tls; http:// and bare are plain; the scheme's port when none is written", () => {
    expect(parseListen("https://169.254.169.254:8443")).toEqual({ host: "169.254.169.254", port: 8443, text: "https://169.254.169.254:8443", tls: true });
    expect(parseListen("https://169.254.169.254")).toMatchObject({ port: 443, tls: true });
    expect(parseListen("HTTPS://[::1]")).toMatchObject({ host: "::1", port: 443, tls: true });
    expect(parseListen("http://127.0.0.1")).toEqual({ host: "127.0.0.1", port: 80, text: "http://127.0.0.1" });
    expect(parseListen("127.0.0.1:8080").tls).toBeUndefined();
  });
  test("a listener scheme other than http/https, a path, or a scheme on the metrics listener is refused", () => {
    expect(() => parseListen("tcp://127.0.0.1:80")).toThrow(/scheme "tcp:\/\/" is not http:\/\/ or https:\/\//);
    expect(() => parseListen("https://127.0.0.1:443/x")).toThrow(/has a path/);
    expect(() => parseListen("https://127.0.0.1:443", false)).toThrow(/takes no scheme/);
    expect(() => parseListen("https://example.com")).toThrow(/not an IPv4 literal/);
  });
  test("tcp:// upstreams need a port and take no path", () => {
    expect(parseUpstream("tcp://127.0.0.1:5432")).toEqual({ origin: "tcp://127.0.0.1:5432", prefix: "", text: "tcp://127.0.0.1:5432" });
    expect(parseUpstream("tcp://[::1]:6379").origin).toBe("tcp://[::1]:6379");
    expect(() => parseUpstream("tcp://127.0.0.1")).toThrow(/is not tcp:\/\/HOST:PORT/);
    expect(() => parseUpstream("tcp://127.0.0.1:5432/db")).toThrow(/is not tcp:\/\/HOST:PORT/);
    expect(() => parseUpstream("tcp://127.0.0.1:99999")).toThrow(/port "99999"/);
  });
  test("mode, upstream_proxy_protocol and certificate paths", () => {
    expect(parseMode("tcp")).toBe("tcp");
    expect(() => parseMode("udp")).toThrow(/mode "udp" is not "http" or "tcp"/);
    expect(parseProxyProtocol("v2")).toBe("v2");
    expect(() => parseProxyProtocol("v1")).toThrow(/version 1 is not offered/);
    expect(parseTlsPath("/etc/c/{tenant}.crt", "tls_cert", true)).toBe("/etc/c/{tenant}.crt");
    expect(() => parseTlsPath("certs/a.crt", "tls_cert", true)).toThrow(/tls_cert "certs\/a.crt" must be an absolute path/);
    expect(() => parseTlsPath("/etc/{name}.crt", "tls_cert", true)).toThrow(/the only placeholder is \{tenant\}/);
    expect(() => parseTlsPath("/etc/{tenant}.pem", "upstream_ca", false)).toThrow(/takes no placeholder/);
  });
});
