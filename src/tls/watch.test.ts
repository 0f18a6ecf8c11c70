// Unit tests for the certificate file poller: every way a rotation replaces a file is seen, an untouched file never is.
import { afterAll, beforeEach, expect, spyOn, test } from "bun:test";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { logger } from "../log.ts";
import { FileWatch } from "./watch.ts";

const root = mkdtempSync(`${tmpdir()}/nsproxy-tls-watch-`);
afterAll(() => rmSync(root, { recursive: true, force: true }));

let dir = "";
let n = 0;
beforeEach(() => {
  dir = `${root}/${++n}`;
  mkdirSync(dir);
});

const nothing = () => {};

test("unchanged files are never reported", () => {
  writeFileSync(`${dir}/a.crt`, "a");
  const w = new FileWatch(nothing);
  w.watch(`${dir}/a.crt`, "acme");
  expect(w.poll()).toEqual([]);
  expect(w.poll()).toEqual([]);
});

test("a rewrite in place (same inode) is reported once", () => {
  writeFileSync(`${dir}/a.crt`, "old");
  const w = new FileWatch(nothing);
  w.watch(`${dir}/a.crt`, "acme");
  writeFileSync(`${dir}/a.crt`, "new, longer");
  expect(w.poll()).toEqual([`${dir}/a.crt`]);
  expect(w.poll()).toEqual([]);
});

test("a rename over the file is reported, even with the same size", () => {
  writeFileSync(`${dir}/a.crt`, "old");
  const w = new FileWatch(nothing);
  w.watch(`${dir}/a.crt`, "acme");
  writeFileSync(`${dir}/a.crt.tmp`, "new");
  renameSync(`${dir}/a.crt.tmp`, `${dir}/a.crt`);
  expect(w.poll()).toEqual([`${dir}/a.crt`]);
  expect(w.poll()).toEqual([]);
});

test("a symlink flip of the file itself is reported", () => {
  writeFileSync(`${dir}/v1.crt`, "same");
  writeFileSync(`${dir}/v2.crt`, "same");
  symlinkSync("v1.crt", `${dir}/a.crt`);
  const w = new FileWatch(nothing);
  w.watch(`${dir}/a.crt`, "acme");
  symlinkSync("v2.crt", `${dir}/a.crt.tmp`);
  renameSync(`${dir}/a.crt.tmp`, `${dir}/a.crt`);
  expect(w.poll()).toEqual([`${dir}/a.crt`]);
  expect(w.poll()).toEqual([]);
});

test("a Kubernetes secret volume flip (..data -> new timestamped directory) reports certificate and key together", () => {
  // The layout kubelet's AtomicWriter makes: tls.crt -> ..data/tls.crt, ..data -> ..2026_11_29_01_00_00.1
  const version = (name: string, content: string) => {
    mkdirSync(`${dir}/${name}`);
    writeFileSync(`${dir}/${name}/tls.crt`, content);
    writeFileSync(`${dir}/${name}/tls.key`, content);
  };
  version("..2026_11_29_01_00_00.1", "identical content");
  symlinkSync("..2026_11_29_01_00_00.1", `${dir}/..data`);
  symlinkSync("..data/tls.crt", `${dir}/tls.crt`);
  symlinkSync("..data/tls.key", `${dir}/tls.key`);
  const w = new FileWatch(nothing);
  w.watch(`${dir}/tls.crt`, "acme");
  w.watch(`${dir}/tls.key`, "acme");
  w.watch(`${dir}/..2026_11_29_01_00_00.1/tls.crt`, "pinned");
  expect(w.poll()).toEqual([]);

  version("..2026_11_29_02_00_00.2", "identical content");
  symlinkSync("..2026_11_29_02_00_00.2", `${dir}/..data_tmp`);
  renameSync(`${dir}/..data_tmp`, `${dir}/..data`);
  rmSync(`${dir}/..2026_11_29_01_00_00.1`, { recursive: true });
  // The pinned path named the old directory: it is gone, which is a change too.
  expect(w.poll().sort()).toEqual([`${dir}/..2026_11_29_01_00_00.1/tls.crt`, `${dir}/tls.crt`, `${dir}/tls.key`]);
  expect(w.poll()).toEqual([]);
});

test("a removed file is reported once, and again when it comes back", () => {
  writeFileSync(`${dir}/a.crt`, "a");
  const w = new FileWatch(nothing);
  w.watch(`${dir}/a.crt`, "acme");
  unlinkSync(`${dir}/a.crt`);
  expect(w.poll()).toEqual([`${dir}/a.crt`]);
  expect(w.poll()).toEqual([]);
  writeFileSync(`${dir}/a.crt`, "a");
  expect(w.poll()).toEqual([`${dir}/a.crt`]);
});

test("a file missing when watched is reported when it appears", () => {
  const w = new FileWatch(nothing);
  w.watch(`${dir}/later.crt`, "acme");
  expect(w.poll()).toEqual([]);
  writeFileSync(`${dir}/later.crt`, "a");
  expect(w.poll()).toEqual([`${dir}/later.crt`]);
});

test("owners are counted: a shared file stays watched until its last owner lets go", () => {
  writeFileSync(`${dir}/shared.crt`, "a");
  const file = `${dir}/shared.crt`;
  const w = new FileWatch(nothing);
  w.watch(file, "acme");
  w.watch(file, "globex");
  w.watch(file, "globex"); // globex's certificate and key are one combined file
  expect(w.owners(file).sort()).toEqual(["acme", "globex"]);
  expect(w.size).toBe(1);

  w.unwatch(file, "acme");
  w.unwatch(file, "globex");
  w.unwatch(file, "initech"); // never watched: nothing happens
  expect(w.owners(file)).toEqual(["globex"]);
  writeFileSync(file, "b, longer");
  expect(w.poll()).toEqual([file]);

  w.unwatch(file, "globex");
  expect(w.size).toBe(0);
  expect(w.owners(file)).toEqual([]);
  writeFileSync(file, "c, longer still");
  expect(w.poll()).toEqual([]);
});

test("start() calls onChange from its timer, survives a throwing consumer, and stop() ends it", async () => {
  writeFileSync(`${dir}/a.crt`, "a");
  let calls = 0;
  let seen: (files: string[]) => void = nothing;
  const w = new FileWatch((files) => {
    calls++;
    seen(files);
    if (calls === 1) throw new Error("consumer bug");
  }, 20);
  w.watch(`${dir}/a.crt`, "acme");
  const logged: unknown[][] = [];
  const spy = spyOn(logger, "error").mockImplementation(((...args: unknown[]) => void logged.push(args)) as typeof logger.error);
  w.start();
  w.start(); // idempotent: still one timer
  try {
    const next = () => new Promise<string[]>((resolve) => (seen = resolve));
    let got = next();
    writeFileSync(`${dir}/a.crt`, "bb");
    expect(await got).toEqual([`${dir}/a.crt`]);
    got = next();
    writeFileSync(`${dir}/a.crt`, "ccc");
    expect(await got).toEqual([`${dir}/a.crt`]);
  } finally {
    w.stop();
    spy.mockRestore();
  }
  expect(logged).toHaveLength(1);
  expect(logged[0]?.[0]).toBe(`certificate watch: handling a change of ${dir}/a.crt failed:`);
  writeFileSync(`${dir}/a.crt`, "dddd");
  await new Promise((r) => setTimeout(r, 100));
  expect(calls).toBe(2);
});
