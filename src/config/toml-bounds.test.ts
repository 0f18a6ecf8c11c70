// Unit tests of the TOML shape bounds: deep keys and too many items refused at their line; real configs pass.
import { expect, test } from "bun:test";
import { parse } from "smol-toml";
import { checkTomlBounds, MAX_KEY_DEPTH } from "./toml-bounds.ts";

const deep = (n: number) => Array.from({ length: n }, (_, i) => `k${i}`).join(".");

test("a real config passes, whatever its strings, comments, arrays and inline tables hold", () => {
  const text = [
    "# a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r in a comment",
    "[daemon]",
    'ingress_listen = ["127.0.0.1:80", "sni://0.0.0.0:443"] # x.y.z',
    "[defaults]",
    'upstream = "http://a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.example:9000"',
    "headers = { \"X-A.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q\" = 'v.v.v', X-B = \"\"\"multi",
    'line . . . . . . . . . . . . . . . . . . . . \\\\""" }',
    "[tenants.acme]",
    'netns = "acme"',
    "headers.\"X-Plan\" = 'gold'",
    "ingress_hosts = [",
    '  "a.example", # one',
    "  'b.example',",
    "]",
    "upstream_timeout = 1.5",
    "[[discover]]",
    "dir = '/run/netns'",
  ].join("\n");
  expect(() => parse(text)).not.toThrow();
  expect(checkTomlBounds(text, 1000)).toBeUndefined();
});

test("a dotted key deeper than the bound is refused at its line, in a key, a table header or an inline table", () => {
  expect(checkTomlBounds(`a = 1\n${deep(MAX_KEY_DEPTH)} = 1\n`, 1000)).toBeUndefined();
  expect(checkTomlBounds(`a = 1\n${deep(MAX_KEY_DEPTH + 1)} = 1\n`, 1000)).toEqual({ line: 2, message: expect.stringContaining(`deeper than ${MAX_KEY_DEPTH} levels`) });
  expect(checkTomlBounds(`a = 1\n\n[${deep(30_000)}]\n`, 1000)?.line).toBe(3);
  expect(checkTomlBounds(`[${deep(8)}]\n${deep(9)} = 1\n`, 1000)?.line).toBe(2);
  expect(checkTomlBounds(`x = { ${deep(10)} = { ${deep(10)} = 1 } }\n`, 1000)?.line).toBe(1);
  expect(checkTomlBounds(`x = ${"[".repeat(100_000)}`, 1000)?.message).toContain("nested deeper");
});

test("more keys and values than the bound are refused", () => {
  const many = Array.from({ length: 2000 }, (_, i) => `k${i} = 1`).join("\n");
  expect(checkTomlBounds(many, 1000)?.message).toBe("more than 1000 keys and values");
  expect(checkTomlBounds(`x = [${"1,".repeat(2000)}]`, 1000)?.line).toBe(1);
  expect(checkTomlBounds(many, 5000)).toBeUndefined();
});

test("text the scan does not follow is left to the parser, and the scan goes on at the next line", () => {
  expect(checkTomlBounds('a = "unterminated\nb = 1\n', 1000)).toBeUndefined();
  expect(checkTomlBounds(`a = ]]]\n${deep(30)} = 1\n`, 1000)?.line).toBe(2);
});
