// Unit tests for discovery's glob and directory scan.
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { discover, globToRegExp } from "./discover.ts";

const dir = mkdtempSync(`${tmpdir()}/nsproxy-discover-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("globs match file names as a shell would", () => {
  expect(globToRegExp("*").test("acme")).toBe(true);
  expect(globToRegExp("tenant-*").test("tenant-1")).toBe(true);
  expect(globToRegExp("tenant-*").test("other")).toBe(false);
  expect(globToRegExp("t?").test("t1")).toBe(true);
  expect(globToRegExp("t?").test("t12")).toBe(false);
  expect(globToRegExp("[ab]*").test("beta")).toBe(true);
  expect(globToRegExp("[!ab]*").test("beta")).toBe(false);
  expect(globToRegExp("a.b").test("axb")).toBe(false);
});

test("scan finds matching files, skips invalid names, tolerates a missing directory", () => {
  mkdirSync(`${dir}/ns`);
  for (const f of ["web-1", "web-2", "db-1", "web bad"]) writeFileSync(`${dir}/ns/${f}`, "");
  const skipped: string[] = [];
  const found = discover(
    [
      { dir: `${dir}/ns`, glob: "web*" },
      { dir: `${dir}/missing`, glob: "*" },
    ],
    (path) => skipped.push(path),
  );
  expect([...found.keys()].sort()).toEqual(["web-1", "web-2"]);
  expect(found.get("web-1")).toEqual({ name: "web-1", netns: `${dir}/ns/web-1` });
  expect(skipped).toEqual([`${dir}/ns/web bad`]);
});

test("an unreadable directory throws instead of finding nothing (so its tenants are kept)", () => {
  const file = `${dir}/not-a-dir-but-a-file`;
  writeFileSync(file, "");
  // ENOTDIR and ENOENT mean "no such directory": nothing found, no error.
  expect(discover([{ dir: file, glob: "*" }], () => {}).size).toBe(0);
  // EACCES is not "empty": root reads anything, so use a name too long for the kernel (ENAMETOOLONG).
  expect(() => discover([{ dir: `${dir}/${"x".repeat(300)}`, glob: "*" }], () => {})).toThrow();
});
