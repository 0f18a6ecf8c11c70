// Unit tests of the node installer: the entry chained last into the first conflist, kept once, removed again.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { installOnce, uninstall } from "./install.ts";

let dir: string;
let bin: string;
let conf: string;
const PRIMARY = { cniVersion: "1.0.0", name: "k8s-pod-network", plugins: [{ type: "bridge", bridge: "cni0" }, { type: "portmap", capabilities: { portMappings: true } }] };

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "nsproxy-cni-install-"));
  bin = join(dir, "bin");
  conf = join(dir, "net.d");
  mkdirSync(bin);
  mkdirSync(conf);
  writeFileSync(join(dir, "nsproxy"), "#!/bin/sh\n");
  writeFileSync(join(conf, "10-primary.conflist"), JSON.stringify(PRIMARY));
  writeFileSync(join(conf, "20-other.conflist"), JSON.stringify({ ...PRIMARY, name: "other" }));
  writeFileSync(join(conf, "05-single.conf"), JSON.stringify({ cniVersion: "1.0.0", type: "bridge" }));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const opts = (entry: Record<string, unknown> = { adminSocket: "/run/nsproxy/admin.sock" }) => ({ binary: join(dir, "nsproxy"), binDir: bin, confDir: conf, entry });
const read = (name: string) => JSON.parse(readFileSync(join(conf, name), "utf8"));

describe("cni install / uninstall", () => {
  test("copies the binary and chains the entry last in the first conflist only; again changes nothing", () => {
    expect(installOnce(opts())).toHaveLength(2);
    expect(statSync(join(bin, "nsproxy")).mode & 0o777).toBe(0o755);
    expect(read("10-primary.conflist")).toEqual({ ...PRIMARY, plugins: [...PRIMARY.plugins, { adminSocket: "/run/nsproxy/admin.sock", type: "nsproxy" }] });
    expect(read("20-other.conflist")).toEqual({ ...PRIMARY, name: "other" });
    expect(installOnce(opts())).toEqual([]);
  });

  test("a network plugin that rewrote its conflist gets the entry again; a changed entry replaces ours, never a second one", () => {
    installOnce(opts());
    writeFileSync(join(conf, "10-primary.conflist"), JSON.stringify(PRIMARY));
    expect(installOnce(opts())).toEqual([`chained nsproxy into ${join(conf, "10-primary.conflist")}`]);
    installOnce(opts({ adminSocket: "/run/nsproxy/admin.sock", failOpen: true }));
    expect(read("10-primary.conflist").plugins.filter((p: { type: string }) => p.type === "nsproxy")).toEqual([{ adminSocket: "/run/nsproxy/admin.sock", failOpen: true, type: "nsproxy" }]);
  });

  test("an entry the plugin would refuse is refused at install; no conflist yet is an error that says why", () => {
    expect(() => installOnce(opts({ tenant: { netns: "/x" } }))).toThrow("tenant.netns is set by the plugin");
    rmSync(join(conf, "10-primary.conflist"));
    rmSync(join(conf, "20-other.conflist"));
    expect(() => installOnce(opts())).toThrow(`no *.conflist in ${conf} yet`);
  });

  test("uninstall takes the entry out and the binary away; twice is fine", () => {
    installOnce(opts());
    expect(uninstall(bin, conf)).toHaveLength(2);
    expect(read("10-primary.conflist")).toEqual(PRIMARY);
    expect(existsSync(join(bin, "nsproxy"))).toBe(false);
    expect(uninstall(bin, conf)).toEqual([]);
  });
});
