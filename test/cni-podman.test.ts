// The CNI plugin chained by a real podman (CNI backend) after bridge/host-local: podman's run, stop, start and rm drive ADD and DEL.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { AdminClient } from "../src/admin/client.ts";
import type { TenantView } from "../src/admin/types.ts";
import { fitTenantName } from "../src/cni/protocol.ts";
import { missingReferencePlugins, nsproxyPluginDir } from "./helpers/cni-bin.ts";
import { BUSYBOX, curlInContainer, podmanIn, rootfs, unmountUnder, which } from "./helpers/containers.ts";
import { daemonDir, RUN_DIR, startNsproxy, type Running, UNDER_DENO } from "./helpers/daemon.ts";
import { skipReason } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";

const missing =
  skipReason ??
  (!which("podman") || !which("runc") ? "needs podman and runc (apt-get install podman runc)" : !BUSYBOX ? "needs busybox-static for the image" : !which("nsenter") || !which("iptables") ? "needs nsenter and iptables" : missingReferencePlugins("bridge", "host-local"));
if (missing) console.warn(`skip: CNI plugin through podman: ${missing}`);

/** This run's own network and bridge (15 characters at most): nothing another run or the machine uses. */
const tag = `${process.pid.toString(36)}${Math.random().toString(36).slice(2, 5)}`;
const NETWORK = `nspt-pods-${tag}`;
const BRIDGE = `nspb${tag}`.slice(0, 15);
/** Where podman 4.3's CNI backend had libcni cache its results here (no containers.conf key for it was found). */
const CNI_CACHE = "/var/lib/cni";

/** The host's firewall and links as text, to compare after: the conflist asks for no masquerade and no port maps. */
function hostState(): { links: string[]; rules: string[] } {
  const out = (argv: string[]) => Bun.spawnSync(argv).stdout.toString().split("\n").filter(Boolean);
  return { links: out(["ip", "-o", "link", "show"]).map((l) => l.split(":")[1]!.trim().split("@")[0]!), rules: [...out(["iptables", "-S"]), ...out(["iptables", "-t", "nat", "-S"])] };
}

describe.skipIf(Boolean(missing))("CNI plugin through podman's CNI backend", () => {
  let dir: string;
  let podman: ReturnType<typeof podmanIn>;
  let upstream: ReturnType<typeof startUpstream>;
  let d: Running;
  let admin: AdminClient;
  let socket: string;
  let before: ReturnType<typeof hostState>;
  let cacheExisted: boolean;
  const tenant = async (name: string): Promise<TenantView | undefined> => (await admin.tenants()).find((t) => t.name === name);
  /** host-local's leases: an address still held after stop means the chain's DEL stopped at a plugin that failed. */
  const leases = () => readdirSync(`${dir}/ipam/${NETWORK}`).filter((f) => /^\d/.test(f));
  const stampIn = async (name: string) => {
    const r = await curlInContainer(podman.cli, name, "http://127.0.0.1:8080/");
    expect(r.status).toBe(200);
    return JSON.parse(r.body) as Echo;
  };

  beforeAll(async () => {
    before = hostState();
    cacheExisted = existsSync(CNI_CACHE);
    mkdirSync(RUN_DIR, { recursive: true });
    dir = mkdtempSync(`${RUN_DIR}/podman-cni-`);
    podman = podmanIn(dir, [nsproxyPluginDir()]);
    socket = `${daemonDir()}/admin.sock`;
    // bridge without a gateway address or masquerade: no host route, no firewall rule; host-local keeps its leases here.
    const bridge = { type: "bridge", bridge: BRIDGE, isGateway: false, ipMasq: false, ipam: { type: "host-local", ranges: [[{ subnet: "10.213.7.0/24" }]], dataDir: `${dir}/ipam` } };
    const nsproxy = { type: "nsproxy", adminSocket: socket, tenant: { listen: "127.0.0.1:8080", headers: { "X-Runtime": "podman" } } };
    writeFileSync(`${dir}/cni/${NETWORK}.conflist`, JSON.stringify({ cniVersion: "1.0.0", name: NETWORK, plugins: [bridge, nsproxy] }));
    await podman.cli(["import", rootfs(dir), "plain"]);
    upstream = startUpstream();
    admin = new AdminClient(socket);
    d = startNsproxy(["run", "-u", `http://127.0.0.1:${upstream.port}`, "--admin-socket", socket, "--no-access-log"]);
    await d.waitFor("waiting for tenants", 30_000);
  }, 120_000);

  afterAll(async () => {
    await d?.stop("SIGKILL");
    upstream?.stop(true);
    if (!dir) return;
    try {
      await podman.cli(["rm", "-af", "-t", "0"], 120_000);
      await podman.cli(["rmi", "-af"]);
    } catch (e) {
      console.warn(`podman cleanup: ${(e as Error).message}`);
    }
    unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
    // The bridge plugin never deletes its bridge; libcni leaves its cache directories.
    Bun.spawnSync(["ip", "link", "del", BRIDGE]);
    for (const f of existsSync(`${CNI_CACHE}/results`) ? readdirSync(`${CNI_CACHE}/results`) : []) if (f.startsWith(`${NETWORK}-`)) rmSync(`${CNI_CACHE}/results/${f}`);
    if (!cacheExisted) for (const p of [`${CNI_CACHE}/results`, CNI_CACHE]) try { rmdirSync(p); } catch {}
  }, 180_000);

  test("run: served from inside the container under its name, with the conf's header; stop: gone, the chain's DEL run whole; start: the same name again; DEL of a tenant already gone succeeds", async () => {
    const t0 = performance.now();
    await podman.cli(["run", "-d", "--name", "web-1", "--network", NETWORK, "plain", "sleep", "600"]);
    const ran = performance.now() - t0;
    const id = await podman.cli(["inspect", "-f", "{{.Id}}", "web-1"]);
    // The ADD answers once the tenant serves: no waiting here.
    const first = (await tenant("web-1"))!;
    expect([first.state, first.owner, first.netns.startsWith("/run/netns/")]).toEqual(["serving", `cni:${id}`, true]);
    expect(first.netns).toBe(await podman.cli(["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "web-1"]));
    const echo = await stampIn("web-1");
    expect(echo.headers["x-nsproxy-tenant"]).toBe("web-1");
    expect(echo.headers["x-runtime"]).toBe("podman");

    await podman.cli(["stop", "-t", "0", "web-1"]);
    expect(await tenant("web-1")).toBeUndefined();
    expect(existsSync(first.netns)).toBe(false);
    expect(leases()).toEqual([]);

    const t1 = performance.now();
    await podman.cli(["start", "web-1"]);
    console.log(`podman (CNI: bridge, nsproxy ${UNDER_DENO ? "source under Deno" : "compiled"}): run ${ran.toFixed(0)} ms, start ${(performance.now() - t1).toFixed(0)} ms, each until served`);
    const again = (await tenant("web-1"))!;
    expect(again.state).toBe("serving");
    expect(again.netns).not.toBe(first.netns);
    expect((await stampIn("web-1")).headers["x-nsproxy-tenant"]).toBe("web-1");

    // Someone removed the tenant already: podman's DEL on stop and rm still succeeds.
    expect(await admin.deleteTenant("web-1")).toBe(true);
    await podman.cli(["stop", "-t", "0", "web-1"]);
    expect(leases()).toEqual([]);
    await podman.cli(["rm", "web-1"]);
    expect(await admin.tenants()).toEqual([]);
  }, 60_000);

  test("a container name over 64 characters: served under its cut name, removed by its DEL", async () => {
    const name = `batch-${"x".repeat(70)}-1`;
    await podman.cli(["run", "-d", "--name", name, "--network", NETWORK, "plain", "sleep", "600"]);
    const cut = fitTenantName(name);
    expect(cut).toMatch(/^batch-x{41}_[0-9a-f]{16}$/);
    expect((await tenant(cut))?.state).toBe("serving");
    expect((await stampIn(name)).headers["x-nsproxy-tenant"]).toBe(cut);
    await podman.cli(["rm", "-f", "-t", "0", name]);
    expect(await admin.tenants()).toEqual([]);
    expect(leases()).toEqual([]);
  }, 60_000);

  test("the daemon down: stop and rm still succeed (DEL is idempotent); run fails closed with the plugin's error", async () => {
    await podman.cli(["run", "-d", "--name", "web-2", "--network", NETWORK, "plain", "sleep", "600"]);
    expect((await tenant("web-2"))?.state).toBe("serving");
    await d.stop("SIGKILL");
    // podman logs a failed DEL and goes on: what shows it is the bridge's DEL, after nsproxy's, releasing the address.
    await podman.cli(["stop", "-t", "0", "web-2"]);
    expect(leases()).toEqual([]);
    await podman.cli(["rm", "web-2"]);

    const refused = await podman.cli(["run", "-d", "--name", "web-3", "--network", NETWORK, "plain", "sleep", "600"]).then(() => "", (e: Error) => e.message);
    expect(refused).toContain(`plugin type="nsproxy" failed (add)`);
    expect(refused).toContain(`nsproxy is not running at ${socket}`);
    // podman leaves the container created, not running; its network was rolled back (DEL, the daemon still down).
    expect(await podman.cli(["inspect", "-f", "{{.State.Status}}", "web-3"])).toBe("created");
    await podman.cli(["rm", "web-3"]);
    expect(leases()).toEqual([]);
  }, 60_000);

  test("the host is left as it was: no container, no port on the bridge, no firewall rule; the bridge removed", async () => {
    expect(await podman.cli(["ps", "-aq"])).toBe("");
    expect(Bun.spawnSync(["ip", "-o", "link", "show", "master", BRIDGE]).stdout.toString()).toBe("");
    expect(Bun.spawnSync(["ip", "link", "del", BRIDGE]).exitCode).toBe(0);
    const after = hostState();
    const ours = (l: string) => l.includes(BRIDGE) || l.includes("10.213.7.") || l.includes("CNI-");
    expect(after.rules.filter((r) => !before.rules.includes(r) && ours(r))).toEqual([]);
    expect(after.links.filter(ours)).toEqual([]);
    const cached = existsSync(`${CNI_CACHE}/results`) ? readdirSync(`${CNI_CACHE}/results`).filter((f) => f.startsWith(`${NETWORK}-`)) : [];
    expect(cached).toEqual([]);
  }, 30_000);
});
