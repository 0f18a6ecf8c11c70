// Unit tests of the CNI plugin mode against a fake daemon: what each command asks the admin API and prints.
import { describe, expect, test } from "bun:test";
import { AdminRequestError, DaemonNotRunning } from "../admin/client.ts";
import type { PutResult, TenantInput, TenantView } from "../admin/types.ts";
import { type PluginAdmin, runPlugin } from "./plugin.ts";

const PREV = { cniVersion: "1.0.0", interfaces: [{ name: "lo", sandbox: "/run/netns/x" }], ips: [{ address: "127.0.0.1/8", interface: 0 }], dns: {} };
const CONF = { cniVersion: "1.0.0", name: "pods", type: "nsproxy", adminSocket: "/run/test.sock", tenant: { listen: "169.254.169.254:80", upstream: "http://127.0.0.1:9000" }, prevResult: PREV };
const ENV = { CNI_CONTAINERID: "0123456789abcdef", CNI_NETNS: "/run/netns/cni-1", CNI_IFNAME: "eth0", CNI_PATH: "/opt/cni/bin", CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1" };

class FakeDaemon implements PluginAdmin {
  tenants_ = new Map<string, TenantView>();
  down = false;
  state: TenantView["state"] = "serving";
  calls: string[] = [];
  private up() {
    if (this.down) throw new DaemonNotRunning("/run/test.sock");
  }
  async putTenant(name: string, input: TenantInput): Promise<PutResult> {
    this.up();
    this.calls.push(`PUT ${name} ${JSON.stringify(input)}`);
    const t = { name, netns: input.netns, owner: input.owner, state: this.state, error: this.state === "serving" ? undefined : "namespace not found [ENOENT]" } as TenantView;
    this.tenants_.set(name, t);
    return { result: "created", tenant: t };
  }
  async deleteTenant(name: string, owner?: string): Promise<boolean> {
    this.up();
    this.calls.push(`DELETE ${name} ${owner}`);
    const t = this.tenants_.get(name);
    if (!t) return false;
    if (owner && t.owner !== owner) throw new AdminRequestError(409, `tenant '${name}' belongs to ${t.owner}, not ${owner}; left as it is`);
    this.tenants_.delete(name);
    return true;
  }
  async tenants(): Promise<TenantView[]> {
    this.up();
    return [...this.tenants_.values()];
  }
  async status(): Promise<unknown> {
    this.up();
    return {};
  }
}

const run = (daemon: FakeDaemon, command: string, conf: object = CONF, env: Record<string, string> = ENV) =>
  runPlugin({ ...env, CNI_COMMAND: command }, JSON.stringify(conf), () => daemon);

describe("CNI ADD", () => {
  test("adds NAMESPACE.POD on CNI_NETNS with the conf's tenant keys and the container as owner; prints prevResult unchanged", async () => {
    const d = new FakeDaemon();
    const out = await run(d, "ADD");
    expect(out.exitCode).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual(PREV);
    expect(d.calls).toEqual([`PUT default.web-1 ${JSON.stringify({ listen: "169.254.169.254:80", upstream: "http://127.0.0.1:9000", netns: "/run/netns/cni-1", owner: "cni:0123456789abcdef" })}`]);
  });

  test("the result carries the conf's cniVersion (0.4.0 too); without a prevResult, a bare result", async () => {
    const out = await run(new FakeDaemon(), "ADD", { ...CONF, cniVersion: "0.4.0" });
    expect(JSON.parse(out.stdout)).toEqual({ ...PREV, cniVersion: "0.4.0" });
    const bare = await run(new FakeDaemon(), "ADD", { ...CONF, prevResult: undefined });
    expect(JSON.parse(bare.stdout)).toEqual({ cniVersion: "1.0.0" });
  });

  test("no pod name: the container id shortened (podman passes K8S_POD_NAME alone: that name)", async () => {
    const d = new FakeDaemon();
    await run(d, "ADD", CONF, { ...ENV, CNI_ARGS: "IgnoreUnknown=1" });
    await run(d, "ADD", CONF, { ...ENV, CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=web" });
    expect([...d.tenants_.keys()]).toEqual(["0123456789ab", "web"]);
  });

  test("a daemon that is down fails the ADD (code 11) unless failOpen", async () => {
    const d = Object.assign(new FakeDaemon(), { down: true });
    const out = await run(d, "ADD");
    expect(out.exitCode).toBe(1);
    expect(JSON.parse(out.stdout)).toMatchObject({ cniVersion: "1.0.0", code: 11, msg: "nsproxy is not running at /run/test.sock" });
    const open = await run(d, "ADD", { ...CONF, failOpen: true });
    expect(open.exitCode).toBe(0);
    expect(JSON.parse(open.stdout)).toEqual(PREV);
    expect(open.note).toContain("failOpen");
  });

  test("a tenant that does not serve fails the ADD and is removed again", async () => {
    const d = Object.assign(new FakeDaemon(), { state: "waiting" as const });
    const out = await run(d, "ADD");
    expect(JSON.parse(out.stdout)).toMatchObject({ code: 100, msg: "tenant default.web-1 is waiting: namespace not found [ENOENT]" });
    expect(d.tenants_.size).toBe(0);
  });

  test("invalid names, keys, versions and environments are CNI errors that name the value", async () => {
    const d = new FakeDaemon();
    const bad = await run(d, "ADD", CONF, { ...ENV, CNI_ARGS: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web:1" });
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 4 });
    expect(JSON.parse(bad.stdout).msg).toContain("made from K8S_POD_NAMESPACE.K8S_POD_NAME");
    expect(JSON.parse((await run(d, "ADD", { ...CONF, tenant: { listen: "localhost:80" } })).stdout)).toMatchObject({ code: 7 });
    expect(JSON.parse((await run(d, "ADD", { ...CONF, tenant: { netns: "/x" } })).stdout).msg).toContain("tenant.netns is set by the plugin");
    expect(JSON.parse((await run(d, "ADD", { ...CONF, cniVersion: "0.3.1" })).stdout)).toMatchObject({ code: 1 });
    expect(JSON.parse((await run(d, "ADD", CONF, { ...ENV, CNI_NETNS: "" })).stdout)).toMatchObject({ code: 4 });
    expect((await runPlugin({ ...ENV, CNI_COMMAND: "ADD" }, "{not json", () => d)).stdout).toContain('"code":6');
    expect(d.calls).toEqual([]);
  });
});

describe("pod names longer than a tenant name", () => {
  const LONG_POD = `checkout-${"a".repeat(60)}-7d9f8b6c4d-x2x7k`;
  const envOf = (pod: string, containerId = "c1") => ({ ...ENV, CNI_CONTAINERID: containerId, CNI_ARGS: `K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${pod}` });

  test("are cut to 64 characters, a readable prefix, '_' and 16 hex of the whole name's sha256, as ADD, CHECK and DEL all do", async () => {
    const d = new FakeDaemon();
    expect((await run(d, "ADD", CONF, envOf(LONG_POD))).exitCode).toBe(0);
    const [name] = [...d.tenants_.keys()];
    const hash = new Bun.CryptoHasher("sha256").update(`shop.${LONG_POD}`).digest("hex").slice(0, 16);
    expect(name).toBe(`${`shop.${LONG_POD}`.slice(0, 47)}_${hash}`);
    expect(name!.length).toBe(64);
    expect(await run(d, "CHECK", CONF, envOf(LONG_POD))).toEqual({ stdout: "", exitCode: 0 });
    expect(await run(d, "DEL", CONF, envOf(LONG_POD))).toEqual({ stdout: "", exitCode: 0 });
    expect(d.tenants_.size).toBe(0);
    expect(d.calls.map((c) => c.split(" ")[1])).toEqual([name, name]);
  });

  test("two long names that share the prefix are two tenants; a name of 64 is kept; a bad character past the cut is refused", async () => {
    const d = new FakeDaemon();
    await run(d, "ADD", CONF, envOf(`${LONG_POD}-a`, "c1"));
    await run(d, "ADD", CONF, envOf(`${LONG_POD}-b`, "c2"));
    expect(new Set(d.tenants_.keys()).size).toBe(2);
    const exact = "p".repeat(64 - "shop.".length);
    await run(d, "ADD", CONF, envOf(exact, "c3"));
    expect(d.tenants_.has(`shop.${exact}`)).toBe(true);
    const hidden = await run(d, "ADD", CONF, envOf(`${LONG_POD}/x`, "c4"));
    expect(JSON.parse(hidden.stdout)).toMatchObject({ code: 4 });
    expect(JSON.parse(hidden.stdout).msg).toContain(`shop.${LONG_POD}/x`);
    expect(d.tenants_.size).toBe(3);
  });
});

describe("CNI DEL", () => {
  test("removes its own tenant; twice, or with the daemon down, or another container's tenant: success", async () => {
    const d = new FakeDaemon();
    await run(d, "ADD");
    expect(await run(d, "DEL")).toEqual({ stdout: "", exitCode: 0 });
    expect(d.tenants_.size).toBe(0);
    expect((await run(d, "DEL")).exitCode).toBe(0);
    d.down = true;
    expect((await run(d, "DEL")).exitCode).toBe(0);
  });

  test("a late DEL of an old container leaves the new container's tenant of the same pod", async () => {
    const d = new FakeDaemon();
    await run(d, "ADD", CONF, { ...ENV, CNI_CONTAINERID: "new1" });
    const late = await run(d, "DEL", CONF, { ...ENV, CNI_CONTAINERID: "old1" });
    expect(late.exitCode).toBe(0);
    expect(d.tenants_.get("default.web-1")?.owner).toBe("cni:new1");
  });
});

describe("CNI CHECK, VERSION, GC, STATUS", () => {
  test("CHECK: serving on this namespace for this container, else an error", async () => {
    const d = new FakeDaemon();
    expect(JSON.parse((await run(d, "CHECK")).stdout)).toMatchObject({ code: 100, msg: "tenant default.web-1 is not there" });
    await run(d, "ADD");
    expect(await run(d, "CHECK")).toEqual({ stdout: "", exitCode: 0 });
    expect(JSON.parse((await run(d, "CHECK", CONF, { ...ENV, CNI_NETNS: "/run/netns/other" })).stdout).msg).toContain("serves /run/netns/cni-1");
  });

  test("VERSION lists 0.4.0, 1.0.0 and 1.1.0 whatever version it is asked in", async () => {
    for (const v of ["0.3.1", "1.0.0"]) {
      const out = await runPlugin({ CNI_COMMAND: "VERSION" }, JSON.stringify({ cniVersion: v }), () => new FakeDaemon());
      expect(JSON.parse(out.stdout)).toEqual({ cniVersion: v, supportedVersions: ["0.4.0", "1.0.0", "1.1.0"] });
    }
  });

  test("GC removes the CNI tenants of containers not among the valid attachments, and nothing else", async () => {
    const d = new FakeDaemon();
    await run(d, "ADD", CONF, { ...ENV, CNI_CONTAINERID: "keep", CNI_ARGS: "K8S_POD_NAME=a" });
    await run(d, "ADD", CONF, { ...ENV, CNI_CONTAINERID: "stale", CNI_ARGS: "K8S_POD_NAME=b" });
    d.tenants_.set("hand", { name: "hand" } as TenantView);
    const out = await run(d, "GC", { ...CONF, cniVersion: "1.1.0", "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }] });
    expect(out.exitCode).toBe(0);
    expect([...d.tenants_.keys()]).toEqual(["a", "hand"]);
  });

  test("STATUS: a daemon that is down is 'not available' (50)", async () => {
    const d = new FakeDaemon();
    expect((await run(d, "STATUS", { ...CONF, cniVersion: "1.1.0" })).exitCode).toBe(0);
    d.down = true;
    expect(JSON.parse((await run(d, "STATUS", { ...CONF, cniVersion: "1.1.0" })).stdout)).toMatchObject({ code: 50 });
  });
});
