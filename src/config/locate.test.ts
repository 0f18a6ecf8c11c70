// Unit tests for locateKey: the line numbers it reports for tables and keys, and what must not fool it.
import { describe, expect, test } from "bun:test";
import { locateKey } from "./locate.ts";

const doc = `# comment [tenants.fake]
[daemon]
workers = 2 # trailing comment

[defaults]
headers = { "X-Env" = "prod", X-A = "1" }

[ tenants . acme ]
netns = "acme"
upstream = "http://127.0.0.1:9000"

[tenants."acme.x"]
netns = 'x'
listen = [
  "127.0.0.1:8080",
  "[::1]:8080",
]

[tenants]
dotted.netns = "d"
dotted . upstream = "unix:/a.sock"
`;

describe("locateKey", () => {
  test("tables, including spaced and quoted headers", () => {
    expect(locateKey(doc, ["daemon"])).toBe(2);
    expect(locateKey(doc, ["defaults"])).toBe(5);
    expect(locateKey(doc, ["tenants", "acme"])).toBe(8);
    expect(locateKey(doc, ["tenants", "acme.x"])).toBe(12);
    // [tenants] itself is explicit on line 19, though [tenants.acme] named it first.
    expect(locateKey(doc, ["tenants"])).toBe(19);
  });

  test("keys under a table", () => {
    expect(locateKey(doc, ["daemon", "workers"])).toBe(3);
    expect(locateKey(doc, ["tenants", "acme", "upstream"])).toBe(10);
    expect(locateKey(doc, ["tenants", "acme.x", "netns"])).toBe(13);
    expect(locateKey(doc, ["tenants", "acme.x", "listen"])).toBe(14);
  });

  test("dotted keys", () => {
    expect(locateKey(doc, ["tenants", "dotted", "netns"])).toBe(20);
    expect(locateKey(doc, ["tenants", "dotted", "upstream"])).toBe(21);
    expect(locateKey(doc, ["tenants", "dotted"])).toBe(20);
  });

  test("keys inside inline tables", () => {
    expect(locateKey(doc, ["defaults", "headers", "X-Env"])).toBe(6);
    expect(locateKey(doc, ["defaults", "headers", "X-A"])).toBe(6);
  });

  test("falls back to the nearest enclosing key or table", () => {
    expect(locateKey(doc, ["tenants", "acme", "listen"])).toBe(8);
    expect(locateKey(doc, ["defaults", "headers", "X-Missing"])).toBe(6);
    expect(locateKey(doc, ["nowhere"])).toBeUndefined();
    expect(locateKey(doc, [])).toBeUndefined();
  });

  test("comments are not tables", () => {
    expect(locateKey(doc, ["tenants", "fake"])).toBe(19);
  });

  test("nothing inside a multi-line string or array matches", () => {
    const src = [
      "[a]", // 1
      'text = """', // 2
      "[b]", // 3
      'key = "not a key"', // 4
      '"""', // 5
      "lit = '''", // 6
      "other = 1 '''", // 7
      "list = [", // 8
      '  "[c]",', // 9
      "  # x = 1", // 10
      "  { inner = 1 },", // 11
      "]", // 12
      'esc = "a\\"b = 1"', // 13
      'quotes = """x"""""', // 14
      "key = 2", // 15
      "[b]", // 16
    ].join("\n");
    expect(locateKey(src, ["b"])).toBe(16);
    expect(locateKey(src, ["a", "key"])).toBe(15);
    expect(locateKey(src, ["a", "other"])).toBe(1);
    expect(locateKey(src, ["c"])).toBeUndefined();
    expect(locateKey(src, ["a", "list"])).toBe(8);
    expect(locateKey(src, ["a", "quotes"])).toBe(14);
  });

  test("arrays of tables, CRLF and multi-line inline tables", () => {
    const src = "[[t]]\r\nx = 1\r\n\r\n[[t]]\r\ny = { a = 1,\r\n  b = 2 }\r\n";
    expect(locateKey(src, ["t"])).toBe(1);
    expect(locateKey(src, ["t", "y"])).toBe(5);
    expect(locateKey(src, ["t", "y", "b"])).toBe(6);
  });

  test("array-of-tables entries by index too", () => {
    const src = "[[t]]\nx = 1\n[[t]]\nx = 2\n";
    expect(locateKey(src, ["t", "1", "x"])).toBe(4);
    expect(locateKey(src, ["t", "1"])).toBe(3);
    expect(locateKey(src, ["t", "x"])).toBe(2);
  });

  test("text it cannot parse has no lines, and does not throw", () => {
    const src = '[unterminated\nx = "open\n= 3\n[ok]\ny = 1\n';
    expect(locateKey(src, ["ok", "y"])).toBeUndefined();
  });

  test("a key of 30,000 dotted parts is found (each definition costs its own length)", () => {
    const parts = Array.from({ length: 30_000 }, () => "a");
    const src = `[daemon]\n${parts.join(".")} = 1\n`;
    expect(locateKey(src, ["daemon", "a"])).toBe(2);
    expect(locateKey(src, ["daemon", ...parts])).toBe(2);
  });
});
