import { describe, expect, test } from "bun:test";
import { capList, parseStatus } from "../netns/caps.ts";
import { mountOf, parseMountinfo, privatePropagationWarnings } from "./mounts.ts";
import { neededCapabilities, type StatOf } from "./needs.ts";
import { privilegeLines } from "./drop.ts";
import { planDocker, probeEngines } from "./docker.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { FakeDocker } from "../../test/helpers/fake-docker.ts";
import { parseUserSpec, resolveUser } from "./user.ts";

const PASSWD = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nnsproxy:x:998:997::/:/usr/sbin/nologin\n";
const GROUP = "root:x:0:\nssl-cert:x:110:nsproxy,other\nnogroup:x:65534:\nnsproxy:x:997:\n";

describe("user", () => {
  test("a name resolves through passwd, with its groups from group", () => {
    expect(resolveUser("nsproxy", PASSWD, GROUP)).toEqual({ spec: "nsproxy", name: "nsproxy", uid: 998, gid: 997, groups: [997, 110] });
  });
  test("uid[:gid]: a bare uid takes its passwd group; uid:gid is taken as given", () => {
    expect(resolveUser("65534", PASSWD, GROUP)).toMatchObject({ name: "nobody", uid: 65534, gid: 65534 });
    expect(resolveUser("4000:4001", PASSWD, GROUP)).toEqual({ spec: "4000:4001", uid: 4000, gid: 4001, groups: [4001] });
    expect(resolveUser("4000", PASSWD, GROUP)).toMatchObject({ uid: 4000, gid: 4000 });
  });
  test("an unknown name is refused with the way out; a malformed spec at parse time", () => {
    expect(() => resolveUser("ghost", PASSWD, GROUP)).toThrow(/user "ghost" is not in \/etc\/passwd/);
    expect(() => parseUserSpec("1:2:3")).toThrow(/not a user name or uid\[:gid\]/);
    expect(() => parseUserSpec("a b")).toThrow(/not a user name/);
    expect(() => parseUserSpec("99999999999")).toThrow();
    expect(parseUserSpec("nsproxy")).toBe("nsproxy");
  });
});

describe("needed capabilities", () => {
  const who = { uid: 998, gid: 997, groups: [997] };
  const files: Record<string, { uid: number; gid: number; mode: number }> = {
    "/run": { uid: 0, gid: 0, mode: 0o755 },
    "/run/netns": { uid: 0, gid: 0, mode: 0o755 },
    "/run/netns/acme": { uid: 0, gid: 0, mode: 0o444 },
    "/var": { uid: 0, gid: 0, mode: 0o755 },
    "/var/run": { uid: 0, gid: 0, mode: 0o755 },
    "/var/run/docker": { uid: 0, gid: 0, mode: 0o700 },
    "/var/run/docker/netns": { uid: 0, gid: 0, mode: 0o755 },
    "/var/run/docker/netns/1a2b": { uid: 0, gid: 0, mode: 0o444 },
    "/proc/4242": { uid: 0, gid: 0, mode: 0o555 },
    "/proc/5000": { uid: 998, gid: 997, mode: 0o555 },
  };
  const stat: StatOf = (p) => files[p];
  const config = { discover: [], ingressListen: [], metrics: { tenantLimit: 0 } };
  const listen = (port: number) => [{ host: "127.0.0.1", port, text: `127.0.0.1:${port}` }];

  test("SYS_ADMIN only, for namespaces under /run/netns and ports from 1024", () => {
    expect([...neededCapabilities(config, [{ name: "acme", netns: "/run/netns/acme", listen: listen(8080) }], who, stat).keys()]).toEqual(["SYS_ADMIN"]);
  });
  test("each other capability with the reason that asks for it", () => {
    const needs = neededCapabilities(
      { ...config, metrics: { tenantLimit: 0, listen: { host: "127.0.0.1", port: 99, text: "127.0.0.1:99" } } },
      [
        { name: "web", netns: "/var/run/docker/netns/1a2b", listen: listen(8080) },
        { name: "pid", netns: "/proc/4242/ns/net", listen: listen(8080) },
        { name: "mine", netns: "/proc/5000/ns/net", listen: listen(8080) },
      ],
      who,
      stat,
    );
    expect(Object.fromEntries(needs)).toEqual({
      SYS_ADMIN: "to enter tenant namespaces (setns)",
      NET_BIND_SERVICE: "metrics listens on port 99 (127.0.0.1:99), below 1024",
      DAC_READ_SEARCH: "tenant web: /var/run/docker is mode 0700 of uid 0",
      SYS_PTRACE: "tenant pid: /proc/4242/ns/net is a namespace of pid 4242, a process of uid 0 (the kernel checks ptrace access to read it)",
    });
  });
  test("a group that may search the directory needs no DAC_READ_SEARCH", () => {
    const grouped: typeof files = { ...files, "/var/run/docker": { uid: 0, gid: 997, mode: 0o710 } };
    expect(neededCapabilities(config, [{ name: "web", netns: "/var/run/docker/netns/1a2b", listen: listen(8080) }], who, (p) => grouped[p]).has("DAC_READ_SEARCH")).toBe(false);
  });
});

describe("docker sockets as a user", () => {
  const nobody = { uid: 65534, gid: 65534, groups: [65534] };
  const files: Record<string, { uid: number; gid: number; mode: number }> = {
    "/var": { uid: 0, gid: 0, mode: 0o755 },
    "/var/run": { uid: 0, gid: 0, mode: 0o755 },
    "/var/run/docker.sock": { uid: 0, gid: 106, mode: 0o140660 },
    "/var/run/docker": { uid: 0, gid: 0, mode: 0o700 },
    "/var/run/docker/netns": { uid: 0, gid: 0, mode: 0o755 },
    "/run": { uid: 0, gid: 0, mode: 0o755 },
    "/run/podman": { uid: 0, gid: 0, mode: 0o755 },
    "/run/podman/podman.sock": { uid: 0, gid: 0, mode: 0o140600 },
    "/run/netns": { uid: 0, gid: 0, mode: 0o755 },
    "/srv": { uid: 0, gid: 0, mode: 0o755 },
    "/srv/open.sock": { uid: 0, gid: 0, mode: 0o140666 },
  };
  const stat = (p: string) => files[p];
  const name = (gid: number) => (gid === 106 ? "docker" : String(gid));
  const DOCKER = "/var/run/docker.sock";

  test("Docker's socket through its group; its sandbox files under the 0700 exec-root: CAP_DAC_READ_SEARCH, each with the reason", () => {
    const plan = planDocker([DOCKER], nobody, true, new Map([[DOCKER, { podman: false }]]), name, stat);
    expect([...plan.groups]).toEqual([[106, "group docker (gid 106) to connect to /var/run/docker.sock"]]);
    expect(Object.fromEntries(plan.needs)).toEqual({ DAC_READ_SEARCH: "discover docker:/var/run/docker.sock: its sandbox files are in /var/run/docker/netns, and /var/run/docker is mode 0700 of uid 0" });
    expect(plan.refusals).toEqual([]);
  });

  test("sandbox files the engine showed in a searchable directory need nothing; a socket anyone may write needs no group", () => {
    const plan = planDocker(["/srv/open.sock"], nobody, true, new Map([["/srv/open.sock", { podman: false, sandboxDir: "/run/netns" }]]), name, stat);
    expect(plan).toEqual({ groups: new Map(), needs: new Map(), refusals: [] });
  });

  test("an engine that said nothing: its sandbox files are assumed behind a root-only exec-root", () => {
    const plan = planDocker(["/srv/open.sock"], nobody, true, new Map(), name, stat);
    expect(plan.needs.get("DAC_READ_SEARCH")).toContain("not known before a container runs");
  });

  test("Podman: /proc/PID/ns/net of root's processes needs CAP_SYS_PTRACE; its root-only socket is refused, saying what to do", () => {
    const podman = "/run/podman/podman.sock";
    const plan = planDocker([podman], nobody, true, new Map([[podman, { podman: true }]]), name, stat);
    expect(plan.needs.get("SYS_PTRACE")).toContain("Podman's containers without a sandbox file are entered by /proc/PID/ns/net");
    expect(plan.refusals).toEqual([expect.stringContaining("discover docker:/run/podman/podman.sock: the socket is mode 0600 of uid 0, group 0, and the user (uid 65534) cannot write it")]);
  });

  test("already running as a user (systemd User=): a group it is in is used and said; one it is not in cannot be joined and is refused", () => {
    const inGroup = planDocker([DOCKER], { ...nobody, groups: [65534, 106] }, false, new Map([[DOCKER, { podman: false }]]), name, stat);
    expect(inGroup.refusals).toEqual([]);
    expect(inGroup.groups.get(106)).toBe("group docker (gid 106) to connect to /var/run/docker.sock");
    const outside = planDocker([DOCKER], nobody, false, new Map([[DOCKER, { podman: false }]]), name, stat);
    expect(outside.refusals).toEqual([expect.stringContaining("usermod -aG docker USER, or systemd SupplementaryGroups=docker")]);
  });

  test("a socket writable by group root only is refused: the daemon does not join group root", () => {
    const rootGroup: typeof files = { ...files, "/srv/root.sock": { uid: 0, gid: 0, mode: 0o140660 } };
    const plan = planDocker(["/srv/root.sock"], nobody, true, new Map(), name, (p) => rootGroup[p]);
    expect(plan.groups.size).toBe(0);
    expect(plan.refusals).toEqual([expect.stringContaining("joining group root would open every root-group file")]);
  });

  test("the probe: Docker or Podman by /libpod/_ping, the sandbox directory from a running container; an engine that is not there says nothing", async () => {
    const dir = mkdtempSync(`${tmpdir()}/nsproxy-probe-`);
    const docker = new FakeDocker(`${dir}/docker.sock`);
    const podman = new FakeDocker(`${dir}/podman.sock`);
    podman.libpod = true;
    try {
      await docker.up();
      await podman.up();
      docker.add("web", {}, { sandbox: "/var/run/docker/netns/1a2b" });
      podman.add("pod", {}, { sandbox: "" });
      const facts = await probeEngines([docker.path, podman.path, `${dir}/none.sock`]);
      expect(Object.fromEntries(facts)).toEqual({
        [docker.path]: { podman: false, sandboxDir: "/var/run/docker/netns" },
        [podman.path]: { podman: true },
        [`${dir}/none.sock`]: {},
      });
    } finally {
      await docker.close();
      await podman.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("root needs nothing of this", () => {
    expect(planDocker([DOCKER], { uid: 0, gid: 0, groups: [0] }, true, new Map(), name, stat)).toEqual({ groups: new Map(), needs: new Map(), refusals: [] });
  });
});

describe("mountinfo", () => {
  const text = [
    "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw",
    "25 22 0:23 / /run rw,nosuid,nodev master:5 - tmpfs tmpfs rw",
    "26 25 0:4 / /run/netns rw shared:9 - tmpfs tmpfs rw",
    "27 22 0:24 / /tmp rw,nosuid,nodev,noexec - tmpfs tmpfs rw",
    "28 22 0:25 / /srv/my\\040dir rw - tmpfs tmpfs rw",
  ].join("\n");
  const entries = parseMountinfo(text);
  test("propagation and options per mount; the deepest mount point holds a path", () => {
    expect(mountOf(entries, "/run/netns/acme")).toMatchObject({ mountPoint: "/run/netns", propagation: "shared" });
    expect(mountOf(entries, "/run/docker")).toMatchObject({ mountPoint: "/run", propagation: "slave" });
    expect(mountOf(entries, "/tmp/x")!.options).toContain("noexec");
    expect(mountOf(entries, "/srv/my dir/x")).toMatchObject({ mountPoint: "/srv/my dir", propagation: "private" });
    expect(mountOf(entries, "/srv/other")).toMatchObject({ mountPoint: "/" });
  });
  test("a private mount under a namespace directory is a warning that says what to change", () => {
    const w = privatePropagationWarnings(["/tmp/netns"], entries);
    expect(w).toHaveLength(1);
    expect(w[0]).toContain("/tmp/netns is on the mount /tmp, which has private propagation");
    expect(w[0]).toContain("MountFlags=slave");
    expect(privatePropagationWarnings(["/run/netns"], entries)).toEqual([]);
  });
});

describe("start-up line", () => {
  const status = (eff: string, bnd: string, nnp: string) => `Uid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nCapPrm:\t${eff}\nCapEff:\t${eff}\nCapBnd:\t${bnd}\nCapAmb:\t${eff}\nNoNewPrivs:\t${nnp}\n`;
  const needs = new Map([
    ["SYS_ADMIN", "to enter tenant namespaces (setns)"],
    ["NET_BIND_SERVICE", "tenant a listens on port 80 (127.0.0.1:80), below 1024"],
  ] as const);
  test("what is held and why; what is needed and missing is a warning; a full bounding set is said", () => {
    const c = parseStatus(status("0000000000200000", "000001ffffffffff", "1"));
    expect(capList(c.effective)).toBe("CAP_SYS_ADMIN");
    const lines = privilegeLines(c, new Map(needs), { name: "nobody" });
    expect(lines.info[0]).toBe(
      "running as nobody (uid 65534, gid 65534) with CAP_SYS_ADMIN (to enter tenant namespaces (setns)); no_new_privs set; bounding set " +
        `${capList(c.bounding)} (reducing it needs CAP_SETPCAP; no_new_privs keeps exec from gaining any)`,
    );
    expect(lines.warn).toEqual([expect.stringContaining("CAP_NET_BIND_SERVICE is needed but not held: tenant a listens on port 80")]);
    expect(lines.info[1]).toContain("needs CAP_NET_ADMIN");
  });
});
