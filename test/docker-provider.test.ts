// Containers as tenants through the Docker Engine API: a real dockerd (and Podman's compatible service) started and removed by the test.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { AdminClient } from "../src/admin/client.ts";
import { daemonDir, startNsproxy, type Running } from "./helpers/daemon.ts";
import { curlInContainer } from "./helpers/containers.ts";
import { Dockerd, dockerMissing, rootfs } from "./helpers/dockerd.ts";
import { PodmanService, podmanMissing } from "./helpers/podman.ts";
import { addNetns, cleanupNetns, curlIn, uniquePrefix } from "./helpers/netns.ts";
import { type Echo, startUpstream } from "./helpers/upstream.ts";
import { until } from "./helpers/wait.ts";

const missing = dockerMissing;
if (missing) console.warn(`skip: docker provider: ${missing}`);

const prefix = uniquePrefix("dkr");
afterAll(() => cleanupNetns(prefix));

interface Engine {
  socket: string;
  /** The CLI (docker or podman) pointed at this engine. */
  cli(args: string[], timeoutMs?: number): Promise<string>;
  /** Remove containers at once (sleep as PID 1 ignores SIGTERM: podman rm -f would wait its 10 s). */
  rm(names: string[]): Promise<string>;
  /** Stop the engine's daemon, then start it again once `whileDown` resolved. */
  restart?(whileDown: () => Promise<void>): Promise<void>;
}

/**
 * The behaviour every Engine API socket must show; `e` is a daemon with two images imported: `plain` (no labels) and
 * `labelled` (LABEL nsproxy.enable=true, nsproxy.tenant=bank, nsproxy.header.X-Plan=gold, nsproxy.upstream=http://127.0.0.1:1).
 */
function providerCases(engine: () => Engine, label: string, unavailable: () => string | undefined = () => undefined) {
  let upstream: ReturnType<typeof startUpstream>;
  let d: Running;
  let admin: AdminClient;
  let plainNs: string;
  const tenant = async (name: string) => (await admin.tenants()).find((t) => t.name === name);

  beforeAll(async () => {
    if (unavailable()) return;
    const e = engine();
    upstream = startUpstream();
    const dir = daemonDir();
    admin = new AdminClient(`${dir}/admin.sock`);
    plainNs = addNetns(`${prefix}${label.slice(0, 3)}`);
    d = startNsproxy(["run", "-l", "127.0.0.1:8160", "-u", `http://127.0.0.1:${upstream.port}`, "-w", "2", "-n", plainNs, "--discover", `docker:${e.socket}`, "--admin-socket", `${dir}/admin.sock`]);
    await d.waitFor("attached 1/1", 30_000);
  });
  afterAll(async () => {
    await d?.stop();
    upstream?.stop(true);
  });

  test(`${label}: a labelled container is served under its name with its label's header; stop releases it, start serves it again, rename follows, rm removes it`, async () => {
    if (unavailable()) return;
    const e = engine();
    await e.cli(["run", "-d", "--name", "web-1", "--network", "none", "-l", "nsproxy.enable=true", "-l", "nsproxy.header.X-Plan=silver", "plain", "sleep", "600"]);
    await until("web-1 to be served", async () => (await tenant("web-1"))?.state === "serving", 10_000);
    expect((await tenant("web-1"))!.source).toBe("container");
    const r = await curlInContainer(e.cli, "web-1", "http://127.0.0.1:8160/x");
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body) as Echo;
    expect(echo.headers["x-nsproxy-tenant"]).toBe("web-1");
    expect(echo.headers["x-plan"]).toBe("silver");

    await e.cli(["stop", "-t", "0", "web-1"]);
    await until("web-1 to be released", async () => (await tenant("web-1")) === undefined, 5000);

    const t0 = performance.now();
    await e.cli(["start", "web-1"]);
    await until("web-1 to serve again", async () => (await tenant("web-1"))?.state === "serving", 10_000);
    const again = await curlInContainer(e.cli, "web-1", "http://127.0.0.1:8160/");
    console.log(`${label}: start -> served again in ${(performance.now() - t0).toFixed(0)} ms (docker start included)`);
    expect(again.status).toBe(200);
    expect((JSON.parse(again.body) as Echo).headers["x-nsproxy-tenant"]).toBe("web-1");

    await e.cli(["rename", "web-1", "web-2"]);
    await until("the tenant to follow the rename", async () => (await tenant("web-1")) === undefined && (await tenant("web-2"))?.state === "serving", 10_000);
    expect((JSON.parse((await curlInContainer(e.cli, "web-2", "http://127.0.0.1:8160/")).body) as Echo).headers["x-nsproxy-tenant"]).toBe("web-2");

    await e.rm(["web-2"]);
    await until("web-2 to be gone", async () => (await tenant("web-2")) === undefined, 5000);
    // Nothing else was disturbed.
    expect((await curlIn(plainNs, "http://127.0.0.1:8160/")).status).toBe(200);
  });

  test(`${label}: identity is the operator's: image labels (nsproxy.tenant too) are ignored, the container's nsproxy.tenant names it, unlabelled containers untouched, a bad label skips its container with one line`, async () => {
    if (unavailable()) return;
    const e = engine();
    await e.cli(["run", "-d", "--name", "from-image", "--network", "none", "labelled", "sleep", "600"]);
    await e.cli(["run", "-d", "--name", "unlabelled", "--network", "none", "plain", "sleep", "600"]);
    // The operator opts in on the container: the image's header and upstream stay ignored, the container's header is honoured.
    await e.cli(["run", "-d", "--name", "opted-in", "--network", "none", "-l", "nsproxy.enable=TRUE", "-l", "nsproxy.header.X-Tier=silver", "labelled", "sleep", "600"]);
    await e.cli(["run", "-d", "--name", "bad-label", "--network", "none", "-l", "nsproxy.enable=true", "-l", "nsproxy.max_connections=lots", "plain", "sleep", "600"]);
    await e.cli(["run", "-d", "--name", "web-7f3a", "--network", "none", "-l", "nsproxy.enable=true", "-l", "nsproxy.tenant=shop", "plain", "sleep", "600"]);
    await until("opted-in to be served", async () => (await tenant("opted-in"))?.state === "serving", 10_000);
    await until("web-7f3a to be served as its label names it", async () => (await tenant("shop"))?.state === "serving", 10_000);
    expect((JSON.parse((await curlInContainer(e.cli, "web-7f3a", "http://127.0.0.1:8160/")).body) as Echo).headers["x-nsproxy-tenant"]).toBe("shop");
    await d.waitFor(/skipping container bad-label: label nsproxy\.max_connections: /, 10_000);
    const r = await curlInContainer(e.cli, "opted-in", "http://127.0.0.1:8160/");
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body) as Echo;
    expect(echo.headers["x-nsproxy-tenant"]).toBe("opted-in");
    expect(echo.headers["x-tier"]).toBe("silver");
    expect(echo.headers["x-plan"]).toBeUndefined();
    await d.waitFor(/container from-image: ignoring labels that come from its image.*nsproxy\.enable/, 5000);
    expect(d.stderr()).toMatch(/container opted-in: ignoring labels that come from its image.*nsproxy\.tenant/);
    const names = (await admin.tenants()).map((t) => t.name);
    expect(names).not.toContain("bank");
    expect(names).not.toContain("web-7f3a");
    expect(names).not.toContain("from-image");
    expect(names).not.toContain("unlabelled");
    expect(names).not.toContain("bad-label");
    expect(d.stderr().match(/skipping container bad-label/g)?.length).toBe(1);
    await e.rm(["from-image", "unlabelled", "opted-in", "bad-label", "web-7f3a"]);
    await until("opted-in to be gone", async () => (await tenant("opted-in")) === undefined, 5000);
  });

  test(`${label}: ${BURST} containers started at once are all served`, async () => {
    if (unavailable()) return;
    const e = engine();
    const names = Array.from({ length: BURST }, (_, i) => `burst-${i}`);
    const t0 = performance.now();
    // Bounded: ten CLI calls at a time (each is a process and an API call).
    const queue = [...names];
    await Promise.all(Array.from({ length: 10 }, async () => {
      for (let n = queue.shift(); n; n = queue.shift()) await e.cli(["run", "-d", "--name", n, "--network", "none", "-l", "nsproxy.enable=true", "plain", "sleep", "600"], 120_000);
    }));
    const started = performance.now();
    await until("every burst container to be served", async () => {
      const live = new Map((await admin.tenants()).map((t) => [t.name, t.state]));
      return names.every((n) => live.get(n) === "serving");
    }, 30_000);
    console.log(`${label}: ${BURST} containers started in ${(started - t0).toFixed(0)} ms, all served ${(performance.now() - started).toFixed(0)} ms later`);
    for (const n of [names[0]!, names.at(-1)!]) {
      expect((JSON.parse((await curlInContainer(e.cli, n, "http://127.0.0.1:8160/")).body) as Echo).headers["x-nsproxy-tenant"]).toBe(n);
    }
    await e.rm(names);
    await until("the burst to be released", async () => !(await admin.tenants()).some((t) => t.name.startsWith("burst-")), 20_000);
    // The 50 CLI calls alone took over 120 s once, under a load average of 20 on two cores.
  }, 300_000);

  test(`${label}: the daemon's socket lost: one line, retried with backoff, nothing else disturbed; back, containers are followed again`, async () => {
    if (unavailable()) return;
    const e = engine();
    if (!e.restart) return;
    await e.restart(async () => {
      await d.waitFor(/docker .*: .*retrying with backoff/, 10_000);
      await Bun.sleep(1500); // several retries
      expect(d.stderr().match(/retrying with backoff/g)?.length).toBe(1);
      expect((await curlIn(plainNs, "http://127.0.0.1:8160/")).status).toBe(200);
    });
    await d.waitFor(/connected again; following containers/, 20_000);
    await e.cli(["run", "-d", "--name", "after", "--network", "none", "-l", "nsproxy.enable=true", "plain", "sleep", "600"]);
    await until("a container started after the outage to be served", async () => (await tenant("after"))?.state === "serving", 10_000);
    await e.rm(["after"]);
  });
}

/** Containers started at once in the burst case: the figure, bounded by ten CLI calls at a time. */
const BURST = 50;

describe.skipIf(Boolean(missing))("docker provider (dockerd)", () => {
  const dockerd = new Dockerd();
  const engine = (): Engine => ({
    socket: dockerd.socket,
    cli: (args, t) => dockerd.docker(args, t),
    rm: (names) => dockerd.docker(["rm", "-f", ...names], 120_000),
    async restart(whileDown) {
      await dockerd.stop();
      await whileDown();
      await dockerd.start();
    },
  });

  beforeAll(async () => {
    await dockerd.start();
    const tar = rootfs(dockerd.dir);
    await dockerd.docker(["import", tar, "plain"]);
    await dockerd.docker(["import", "--change", "LABEL nsproxy.enable=true", "--change", "LABEL nsproxy.tenant=bank", "--change", "LABEL nsproxy.header.X-Plan=gold", "--change", "LABEL nsproxy.upstream=http://127.0.0.1:1", tar, "labelled"]);
  }, 90_000);

  afterAll(() => dockerd.remove(["plain", "labelled"]), 180_000);

  providerCases(engine, "docker");
});

if (!missing && podmanMissing) console.warn(`skip: docker provider through podman: ${podmanMissing}`);

describe.skipIf(Boolean(podmanMissing))("docker provider (podman system service)", () => {
  const service = new PodmanService();
  let unavailable: string | undefined;
  const engine = (): Engine => ({
    socket: service.socket,
    cli: (args, t) => service.podman(args, t),
    rm: (names) => service.podman(["rm", "-f", "-t", "0", ...names], 120_000),
    async restart(whileDown) {
      await service.stop();
      await whileDown();
      await service.start();
    },
  });

  beforeAll(async () => {
    try {
      await service.start();
      const tar = rootfs(service.dir);
      await service.podman(["import", tar, "plain"]);
      await service.podman(["import", "--change", "LABEL nsproxy.enable=true", "--change", "LABEL nsproxy.tenant=bank", "--change", "LABEL nsproxy.header.X-Plan=gold", "--change", "LABEL nsproxy.upstream=http://127.0.0.1:1", tar, "labelled"]);
      await service.podman(["run", "--rm", "--network", "none", "plain", "sh", "-c", "true"]);
    } catch (e) {
      unavailable = `podman cannot run a container here: ${(e as Error).message.split("\n")[0]}`;
      console.warn(`skip: docker provider through podman: ${unavailable}`);
    }
  }, 120_000);

  afterAll(() => service.remove(), 180_000);

  providerCases(engine, "podman", () => unavailable);
});
