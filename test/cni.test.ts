// The CNI plugin mode run exactly as a container runtime runs a chain: the reference loopback plugin, then nsproxy, on real namespaces.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { AdminClient } from "../src/admin/client.ts";
import { fitTenantName } from "../src/cni/protocol.ts";
import { missingReferencePlugins, nsproxyPluginDir } from "./helpers/cni-bin.ts";
import { daemonDir, startNsproxy, UNDER_DENO } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, delNetns, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";
import { until } from "./helpers/wait.ts";

const prefix = uniquePrefix("cni");
afterAll(() => cleanupNetns(prefix));

const noPlugins = missingReferencePlugins("loopback");
if (noPlugins && !skipReason) console.warn(`skip: CNI chain tests: ${noPlugins}`);

/** CNI_PATH as a runtime has it: loopback, and nsproxy installed under its plugin name. */
const pluginDir = () => nsproxyPluginDir(["loopback"]);

interface Attachment {
  containerId: string;
  netns: string;
  pod: string;
}

/** One chain: the conflist's plugins in order for ADD/CHECK (each gets the previous result), in reverse for DEL. */
class Chain {
  constructor(
    private readonly bin: string,
    private readonly socket: string,
    private readonly tenant: Record<string, unknown>,
    private readonly extra: Record<string, unknown> = {},
  ) {}

  private plugins(): Record<string, unknown>[] {
    return [{ type: "loopback" }, { type: "nsproxy", adminSocket: this.socket, tenant: this.tenant, ...this.extra }];
  }

  /** Run one plugin as a runtime does: exec CNI_PATH/type with the CNI_* environment and the conf on stdin. */
  async exec(command: string, a: Attachment, conf: Record<string, unknown>): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
    const env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      CNI_COMMAND: command,
      CNI_CONTAINERID: a.containerId,
      CNI_NETNS: a.netns,
      CNI_IFNAME: "eth0",
      CNI_PATH: this.bin,
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${a.pod};K8S_POD_INFRA_CONTAINER_ID=${a.containerId}`,
    };
    const started = performance.now();
    const proc = Bun.spawn([`${this.bin}/${conf.type}`], { env, stdin: new TextEncoder().encode(JSON.stringify(conf)), stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, stdout, stderr, ms: performance.now() - started };
  }

  /** ADD (or CHECK) through the chain; the last plugin's answer, and nsproxy's own wall time. */
  async run(command: "ADD" | "CHECK", a: Attachment) {
    let prev: unknown;
    let last = { code: 0, stdout: "", stderr: "", ms: 0 };
    for (const p of this.plugins()) {
      const conf = { cniVersion: "1.0.0", name: "pods", ...p, ...(prev === undefined ? {} : { prevResult: prev }) };
      last = await this.exec(command, a, conf);
      if (last.code !== 0) return { ...last, prevResult: prev };
      if (command === "ADD") prev = JSON.parse(last.stdout);
    }
    return { ...last, prevResult: prev };
  }

  async del(a: Attachment) {
    const out = [];
    for (const p of this.plugins().reverse()) out.push(await this.exec("DEL", a, { cniVersion: "1.0.0", name: "pods", ...p }));
    return out;
  }
}

/** A daemon with a tenants dir and an upstream, the plugin chain with the conf's `tenant` keys, an admin client; `stop()` ends both. */
function cniDaemon(tenant: Record<string, unknown> = { listen: "127.0.0.1:8080" }) {
  const upstream = startUpstream();
  const dir = daemonDir();
  const socket = `${dir}/admin/admin.sock`;
  const d = startNsproxy(["run", "-u", `http://127.0.0.1:${upstream.port}`, "--admin-socket", socket, "--tenants-dir", `${dir}/tenants.d`, "--no-access-log"]);
  const stop = async () => {
    await d.stop("SIGKILL");
    upstream.stop(true);
  };
  return { dir, d, chain: new Chain(pluginDir(), socket, tenant), admin: new AdminClient(socket), stop };
}

describe.skipIf(Boolean(skipReason || noPlugins))("CNI plugin mode, by hand with the reference loopback plugin", () => {
  test("ADD serves the pod under NAMESPACE.POD and passes loopback's result on; CHECK; a new sandbox keeps the name; DEL twice", async () => {
    const { dir, d, chain, admin, stop } = cniDaemon({ listen: "127.0.0.1:8080", headers: { "X-Cluster": "test" } });
    try {
      await d.waitFor("waiting for tenants");
      const first: Attachment = { containerId: "c0ffee01", netns: `/run/netns/${addNetns(`${prefix}a`)}`, pod: "web-1" };
      const add = await chain.run("ADD", first);
      expect(add.stderr).toBe("");
      expect(add.code).toBe(0);
      // The result is loopback's, unchanged.
      expect(JSON.parse(add.stdout)).toEqual(add.prevResult as object);
      console.log(`CNI ADD (nsproxy plugin alone, ${UNDER_DENO ? "source under Deno" : "compiled binary"}): ${add.ms.toFixed(0)} ms`);
      const echo = JSON.parse((await curlIn(`${prefix}a`, "http://127.0.0.1:8080/")).body) as Echo;
      expect(echo.headers["x-nsproxy-tenant"]).toBe("default.web-1");
      expect(echo.headers["x-cluster"]).toBe("test");
      expect((await chain.run("CHECK", first)).code).toBe(0);

      // The pod's sandbox is recreated: the old one's DEL, a new namespace and container, the same tenant name.
      for (const r of await chain.del(first)) expect(r.code).toBe(0);
      delNetns(`${prefix}a`);
      const second: Attachment = { containerId: "c0ffee02", netns: `/run/netns/${addNetns(`${prefix}b`)}`, pod: "web-1" };
      expect((await chain.run("ADD", second)).code).toBe(0);
      const again = JSON.parse((await curlIn(`${prefix}b`, "http://127.0.0.1:8080/")).body) as Echo;
      expect(again.headers["x-nsproxy-tenant"]).toBe("default.web-1");
      // A late DEL of the old sandbox leaves the new one's tenant.
      for (const r of await chain.del(first)) expect(r.code).toBe(0);
      expect((await admin.tenants()).map((t) => [t.name, t.owner, t.state])).toEqual([["default.web-1", "cni:c0ffee02", "serving"]]);

      // DEL twice: both succeed, the tenant is gone.
      for (let i = 0; i < 2; i++) for (const r of await chain.del(second)) expect(r.code).toBe(0);
      expect(await admin.tenants()).toEqual([]);
      expect(existsSync(`${dir}/tenants.d/default.web-1.toml`)).toBe(false);
      expect((await chain.run("CHECK", second)).code).not.toBe(0);
    } finally {
      await stop();
    }
  }, 60_000);

  test("a pod name over 64 characters: ADD serves it under its cut name, CHECK and DEL find the same tenant", async () => {
    const { d, chain, admin, stop } = cniDaemon();
    try {
      await d.waitFor("waiting for tenants");
      const pod = `report-${"r".repeat(60)}-28431950-abcde`;
      const a: Attachment = { containerId: "long01", netns: `/run/netns/${addNetns(`${prefix}l`)}`, pod };
      expect((await chain.run("ADD", a)).code).toBe(0);
      const cut = fitTenantName(`default.${pod}`);
      expect(cut).toMatch(/^default\.report-r{32}_[0-9a-f]{16}$/);
      expect((JSON.parse((await curlIn(`${prefix}l`, "http://127.0.0.1:8080/")).body) as Echo).headers["x-nsproxy-tenant"]).toBe(cut);
      expect((await chain.run("CHECK", a)).code).toBe(0);
      for (const r of await chain.del(a)) expect(r.code).toBe(0);
      expect(await admin.tenants()).toEqual([]);
    } finally {
      await stop();
    }
  }, 60_000);

  test("a missed DEL: once the namespace is deleted the daemon drops the tenant, file and all", async () => {
    const { dir, d, chain, admin, stop } = cniDaemon();
    try {
      await d.waitFor("waiting for tenants");
      const a: Attachment = { containerId: "dead01", netns: `/run/netns/${addNetns(`${prefix}m`)}`, pod: "crashed" };
      expect((await chain.run("ADD", a)).code).toBe(0);
      // An operator's tenant on a namespace that is gone too: not the daemon's to drop.
      await admin.putTenant("by-hand", { netns: `/run/netns/${prefix}never`, listen: "127.0.0.1:8080" });
      expect(existsSync(`${dir}/tenants.d/default.crashed.toml`)).toBe(true);
      delNetns(`${prefix}m`);
      await until("the orphan dropped", async () => !(await admin.tenants()).some((t) => t.name === "default.crashed"), 10_000);
      expect(existsSync(`${dir}/tenants.d/default.crashed.toml`)).toBe(false);
      expect((await admin.tenants()).map((t) => t.name)).toEqual(["by-hand"]);
      expect(d.stderr()).toContain("tenant default.crashed: namespace /run/netns/");
    } finally {
      await stop();
    }
  }, 60_000);

  test("the daemon down: ADD fails closed with a CNI error (failOpen lets the pod start); DEL succeeds", async () => {
    const dir = daemonDir();
    const socket = `${dir}/admin/admin.sock`;
    const bin = pluginDir();
    const a: Attachment = { containerId: "down01", netns: `/run/netns/${addNetns(`${prefix}d`)}`, pod: "web-2" };
    const add = await new Chain(bin, socket, { listen: "127.0.0.1:8080" }).run("ADD", a);
    expect(add.code).not.toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ cniVersion: "1.0.0", code: 11, msg: `nsproxy is not running at ${socket}` });
    const open = await new Chain(bin, socket, { listen: "127.0.0.1:8080" }, { failOpen: true }).run("ADD", a);
    expect(open.code).toBe(0);
    expect(JSON.parse(open.stdout)).toEqual(open.prevResult as object);
    expect(open.stderr).toContain("failOpen");
    for (const r of await new Chain(bin, socket, {}).del(a)) expect(r.code).toBe(0);
  }, 60_000);
});
