// --user with --discover docker: the dropped daemon keeps the Docker socket through its group and opens sandbox files with only the planned capabilities.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, readdirSync, readFileSync, statSync } from "node:fs";
import { AdminClient } from "../src/admin/client.ts";
import { groupName } from "../src/privilege/user.ts";
import { daemonDir, runNsproxy, startNsproxy, type Running } from "./helpers/daemon.ts";
import { Dockerd, dockerMissing, rootfs } from "./helpers/dockerd.ts";
import { FakeDocker } from "./helpers/fake-docker.ts";
import { PodmanService, podmanMissing } from "./helpers/podman.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";
import { until } from "./helpers/wait.ts";

if (dockerMissing) console.warn(`skip: docker least privilege: ${dockerMissing}`);

const NOBODY = 65534;
const SYS_ADMIN = 1n << 21n;
const DAC_READ_SEARCH = 1n << 2n;
const SYS_PTRACE = 1n << 19n;
/** The docker group's gid, for a socket the test hands to a group that is not root. */
const DOCKER_GID = Number(/^docker:[^:]*:(\d+):/m.exec(readFileSync("/etc/group", "utf8"))?.[1] ?? NaN);

/** A directory nobody can traverse to (the test's own are root's 0700). */
function openDir(): string {
  const dir = daemonDir();
  chmodSync(dir, 0o755);
  return dir;
}

/** Each thread's uid, supplementary groups and capability sets, from /proc/PID/task/TID/status. */
function threads(pid: number) {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const s = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
    const f = (k: string) => s.match(new RegExp(`^${k}:[ \\t]*(.*)$`, "m"))![1]!.trim();
    return { uid: f("Uid"), groups: f("Groups").split(/\s+/).filter(Boolean).map(Number), eff: BigInt(`0x${f("CapEff")}`), prm: BigInt(`0x${f("CapPrm")}`), amb: BigInt(`0x${f("CapAmb")}`) };
  });
}

describe.skipIf(Boolean(dockerMissing))("docker provider as a user", () => {
  const dockerd = new Dockerd();
  const upstream = startUpstream();
  beforeAll(async () => {
    await dockerd.start();
    await dockerd.docker(["import", rootfs(dockerd.dir), "plain"]);
  }, 90_000);
  afterAll(async () => {
    upstream.stop(true);
    await dockerd.remove(["plain"]);
  }, 180_000);

  test("--user nobody: the socket's group joined and CAP_DAC_READ_SEARCH kept, each with its reason; a labelled container is served; every thread has nobody's uid and only the planned capabilities", async () => {
    const sock = statSync(dockerd.socket);
    // dockerd makes its socket root:docker 0660 (--group docker) when the group exists, as on this machine.
    expect({ mode: sock.mode & 0o777, uid: sock.uid }).toEqual({ mode: 0o660, uid: 0 });
    expect(sock.gid).not.toBe(0);
    const dir = openDir();
    const admin = new AdminClient(`${dir}/admin/admin.sock`);
    let d: Running | undefined;
    try {
      d = startNsproxy(["run", "--user", "nobody", "-l", "127.0.0.1:8160", "-u", `http://127.0.0.1:${upstream.port}`, "-w", "2", "--discover", `docker:${dockerd.socket}`, "--admin-socket", `${dir}/admin/admin.sock`, "--tenants-dir", `${dir}/tenants.d`]);
      await d.waitFor(/running as nobody/, 30_000);
      console.log(d.stderr().split("\n").find((l) => l.includes("running as nobody")));
      const name = groupName(sock.gid).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      expect(d.stderr()).toMatch(new RegExp(`supplementary group ${name} \\(gid ${sock.gid}\\) to connect to ${dockerd.socket}`));
      // The test's dockerd lives in a root-only 0700 directory, as /run/docker is.
      expect(d.stderr()).toMatch(new RegExp(`CAP_DAC_READ_SEARCH \\(discover docker:${dockerd.socket}: ${dockerd.dir} is mode 0700 of uid 0\\)`));
      expect(d.stderr()).not.toContain("CAP_SYS_PTRACE");

      await dockerd.docker(["run", "-d", "--name", "user-web", "--network", "none", "-l", "nsproxy.enable=true", "-l", "nsproxy.tenant=shop", "plain", "sleep", "600"]);
      await until("the container to be served by the dropped daemon", async () => (await admin.tenants()).find((t) => t.name === "shop")?.state === "serving", 15_000);
      const tenant = (await admin.tenants()).find((t) => t.name === "shop")!;
      expect(tenant.netns.startsWith(`${dockerd.dir}/exec/netns/`)).toBe(true);
      const pid = await dockerd.docker(["inspect", "-f", "{{.State.Pid}}", "user-web"]);
      const p = Bun.spawn(["nsenter", `--net=/proc/${pid}/ns/net`, "curl", "-sS", "--max-time", "10", "http://127.0.0.1:8160/"], { stdout: "pipe", stderr: "pipe" });
      const body = await new Response(p.stdout).text();
      expect(await p.exited).toBe(0);
      expect((JSON.parse(body) as Echo).headers["x-nsproxy-tenant"]).toBe("shop");

      const all = threads(d.proc.pid);
      expect(all.length).toBeGreaterThan(2);
      for (const t of all) {
        expect(t.uid).toBe(`${NOBODY}\t${NOBODY}\t${NOBODY}\t${NOBODY}`);
        expect(t.groups).toContain(sock.gid);
        expect({ eff: t.eff, prm: t.prm, amb: t.amb }).toEqual({ eff: SYS_ADMIN | DAC_READ_SEARCH, prm: SYS_ADMIN | DAC_READ_SEARCH, amb: SYS_ADMIN | DAC_READ_SEARCH });
      }
      expect(d.stderr()).not.toMatch(/retrying with backoff|EACCES|permission denied/i);
    } finally {
      await d?.stop("SIGKILL");
      await dockerd.docker(["rm", "-f", "user-web"], 120_000).catch(() => "");
    }
  }, 120_000);

  test("a socket the user could never connect to is refused at start, naming it and what to do", async () => {
    const dir = openDir();
    const fake = new FakeDocker(`${dir}/engine.sock`);
    await fake.up();
    try {
      chmodSync(fake.path, 0o600);
      const r = await runNsproxy(["run", "--user", "nobody", "-l", "127.0.0.1:8160", "-u", `http://127.0.0.1:${upstream.port}`, "--discover", `docker:${fake.path}`, "--admin-socket", `${dir}/admin/admin.sock`, "--tenants-dir", `${dir}/tenants.d`]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`discover docker:${fake.path}: the socket is mode 0600 of uid 0, group root, and the user (uid 65534) cannot write it`);
      expect(r.stderr).toContain("chmod g+rw");
    } finally {
      await fake.close();
    }
  }, 60_000);
});

const podmanSkip = podmanMissing ?? (Number.isNaN(DOCKER_GID) ? "needs a docker group to hand podman's socket to" : undefined);
if (!dockerMissing && podmanSkip) console.warn(`skip: podman least privilege: ${podmanSkip}`);

describe.skipIf(Boolean(podmanSkip))("podman's service as a user", () => {
  const service = new PodmanService();
  const upstream = startUpstream();
  beforeAll(async () => {
    await service.start();
    await service.podman(["import", rootfs(service.dir), "plain"]);
  }, 120_000);
  afterAll(async () => {
    upstream.stop(true);
    await service.remove();
  }, 180_000);

  test("--user nobody: containers entered by /proc/PID/ns/net of root's processes: CAP_SYS_PTRACE kept with its reason, and no CAP_DAC_READ_SEARCH when nothing is root-only", async () => {
    // Podman makes its socket root's 0600: hand it to a group, and let anyone reach its directory.
    chmodSync(service.dir, 0o755);
    chownSync(service.socket, 0, DOCKER_GID);
    chmodSync(service.socket, 0o660);
    const dir = openDir();
    const admin = new AdminClient(`${dir}/admin/admin.sock`);
    let d: Running | undefined;
    try {
      d = startNsproxy(["run", "--user", "nobody", "-l", "127.0.0.1:8160", "-u", `http://127.0.0.1:${upstream.port}`, "-w", "2", "--discover", `docker:${service.socket}`, "--admin-socket", `${dir}/admin/admin.sock`, "--tenants-dir", `${dir}/tenants.d`]);
      await d.waitFor(/running as nobody/, 30_000);
      console.log(d.stderr().split("\n").find((l) => l.includes("running as nobody")));
      expect(d.stderr()).toContain(`CAP_SYS_PTRACE (discover docker:${service.socket}: Podman's containers without a sandbox file are entered by /proc/PID/ns/net`);
      expect(d.stderr()).toContain(`(gid ${DOCKER_GID}) to connect to ${service.socket}`);
      expect(d.stderr()).not.toContain("CAP_DAC_READ_SEARCH");

      await service.podman(["run", "-d", "--name", "pod-web", "--network", "none", "-l", "nsproxy.enable=true", "plain", "sleep", "600"]);
      await until("the container to be served by the dropped daemon", async () => (await admin.tenants()).find((t) => t.name === "pod-web")?.state === "serving", 15_000);
      const pid = await service.podman(["inspect", "-f", "{{.State.Pid}}", "pod-web"]);
      expect((await admin.tenants()).find((t) => t.name === "pod-web")!.netns).toBe(`/proc/${pid}/ns/net`);
      const p = Bun.spawn(["nsenter", `--net=/proc/${pid}/ns/net`, "curl", "-sS", "--max-time", "10", "http://127.0.0.1:8160/"], { stdout: "pipe", stderr: "pipe" });
      const body = await new Response(p.stdout).text();
      expect(await p.exited).toBe(0);
      expect((JSON.parse(body) as Echo).headers["x-nsproxy-tenant"]).toBe("pod-web");
      for (const t of threads(d.proc.pid)) {
        expect(t.uid).toBe(`${NOBODY}\t${NOBODY}\t${NOBODY}\t${NOBODY}`);
        expect(t.groups).toContain(DOCKER_GID);
        expect({ eff: t.eff, prm: t.prm }).toEqual({ eff: SYS_ADMIN | SYS_PTRACE, prm: SYS_ADMIN | SYS_PTRACE });
      }
    } finally {
      await d?.stop("SIGKILL");
      await service.podman(["rm", "-f", "-t", "0", "pod-web"], 120_000).catch(() => "");
    }
  }, 120_000);
});
