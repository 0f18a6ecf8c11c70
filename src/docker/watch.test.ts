// Unit tests of the container watch and the container tenants against a fake Engine API: the lifecycle without a dockerd.
import { afterAll, afterEach, beforeEach, describe, expect, spyOn, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { loadLayered } from "../config/load.ts";
import { clashOf } from "../control/desired.ts";
import { logger } from "../log.ts";
import { FakeDocker } from "../../test/helpers/fake-docker.ts";
import { until } from "../../test/helpers/wait.ts";
import { ContainerTenants } from "./containers.ts";
import { DockerWatch } from "./watch.ts";

const dir = mkdtempSync(`${tmpdir()}/nsproxy-fake-docker-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ON = { "nsproxy.enable": "true" };
let n = 0;
let fake: FakeDocker;
let watch: DockerWatch | undefined;
let changes = 0;
let lines: { level: string; text: string }[] = [];
let spies: { mockRestore(): void }[] = [];

beforeEach(async () => {
  fake = new FakeDocker(`${dir}/d${n++}.sock`);
  await fake.up();
  changes = 0;
  lines = [];
  spies = (["info", "warn", "error"] as const).map((level) =>
    spyOn(logger, level).mockImplementation(((...args: unknown[]) => void lines.push({ level, text: args.map(String).join(" ") })) as typeof logger.info),
  );
});

afterEach(async () => {
  watch?.stop();
  watch = undefined;
  await fake.close();
  for (const s of spies) s.mockRestore();
});

function follow(): DockerWatch {
  watch = new DockerWatch(fake.path, () => changes++);
  watch.start();
  return watch;
}

const names = () => [...watch!.containers.values()].map((c) => c.name).sort();
const inspectsOf = (id: string) => fake.count(`/containers/${id}/json`);
const logged = (re: RegExp) => lines.filter((l) => re.test(l.text));

describe("DockerWatch", () => {
  test("running containers are listed at connect; start adds, die/stop/destroy release at once without asking, start again takes the new namespace, rename follows; unlabelled ones are left alone", async () => {
    const web = fake.add("web-1", ON);
    fake.add("plain", {});
    const w = follow();
    await until("web-1 listed", () => w.containers.has(web.id));
    expect(w.containers.get(web.id)).toMatchObject({ name: "web-1", netns: web.sandbox, labels: ON, socket: fake.path });

    const two = fake.add("web-2", ON);
    const plain = fake.add("plain-2", {});
    fake.emit("start", two.id);
    fake.emit("start", plain.id);
    await until("web-2 served", () => w.containers.has(two.id));
    await until("plain-2 inspected", () => inspectsOf(plain.id) > 0);
    expect(names()).toEqual(["web-1", "web-2"]);

    // The daemon still says running (a stale answer): the event alone releases it, with no inspect.
    const before = inspectsOf(web.id);
    fake.emit("die", web.id);
    await until("web-1 released", () => !w.containers.has(web.id));
    await Bun.sleep(100);
    expect(w.containers.has(web.id)).toBe(false);
    expect(inspectsOf(web.id)).toBe(before);

    fake.emit("stop", two.id);
    await until("web-2 released", () => !w.containers.has(two.id));

    web.sandbox = "/run/fake-docker/netns/restarted";
    web.pid = 4242;
    fake.emit("start", web.id);
    await until("web-1 again, in its new namespace", () => w.containers.get(web.id)?.netns === "/run/fake-docker/netns/restarted");

    web.name = "web-renamed";
    fake.emit("rename", web.id, { oldName: "/web-1", name: "/web-renamed" });
    await until("the rename followed", () => w.containers.get(web.id)?.name === "web-renamed");

    fake.containers.delete(web.id);
    fake.emit("destroy", web.id);
    await until("web gone", () => w.containers.size === 0);
    expect(logged(/./).filter((l) => l.level !== "info")).toEqual([]);
  });

  test("a container without a sandbox file is served by its first process's namespace", async () => {
    const c = fake.add("pod", ON, { sandbox: "", pid: 777 });
    const w = follow();
    await until("pod listed", () => w.containers.get(c.id));
    expect(w.containers.get(c.id)!.netns).toBe("/proc/777/ns/net");
  });

  test("an inspect that 404s (the container went between the event and the inspect): not served, or released, and nothing logged", async () => {
    const kept = fake.add("kept", ON);
    const w = follow();
    await until("kept listed", () => w.containers.has(kept.id));
    // Gone by the time the inspect arrives.
    fake.inspectHook = (id) => void fake.containers.delete(id);
    const brief = fake.add("brief", ON);
    fake.emit("start", brief.id);
    await until("brief inspected", () => inspectsOf(brief.id) > 0);
    fake.emit("update", kept.id);
    await until("kept released: its inspect said it is gone", () => !w.containers.has(kept.id));
    await Bun.sleep(50);
    expect(w.containers.size).toBe(0);
    expect(lines.filter((l) => l.level !== "info")).toEqual([]);
  });

  test("an inspect answered after a die that came meanwhile is stale: the container stays released", async () => {
    const c = fake.add("racy", ON);
    const w = follow();
    await until("racy listed", () => w.containers.has(c.id));
    let answer!: () => void;
    fake.inspectHook = (id) => new Promise<void>((ok) => (answer = ok)).then(() => void id);
    fake.emit("update", c.id);
    await until("the inspect to be asked", () => answer !== undefined && inspectsOf(c.id) >= 2);
    fake.emit("die", c.id);
    await until("released by the die", () => !w.containers.has(c.id));
    answer(); // still "running" in the fake: an answer from before the die
    await Bun.sleep(100);
    expect(w.containers.has(c.id)).toBe(false);
  });

  test("the events stream ends and the socket goes: released once, one line, retried with backoff; back: listed and followed again", async () => {
    const a = fake.add("a", ON);
    const b = fake.add("b", ON);
    const w = follow();
    await until("both listed", () => w.containers.size === 2);
    const changed = changes;
    fake.dropEvents();
    await fake.down();
    await until("released", () => w.containers.size === 0);
    await Bun.sleep(1200); // 250 + 500 ms retries, and the 1000 ms one under way
    expect(changes - changed).toBe(1);
    expect(logged(/retrying with backoff/).length).toBe(1);
    expect(logged(/retrying with backoff/)[0]!.text).toContain(fake.path);
    await fake.up();
    await until("both back", () => w.containers.size === 2, 15_000);
    expect(logged(/connected again; following containers/).length).toBe(1);
    fake.emit("die", a.id);
    await until("events followed again", () => !w.containers.has(a.id) && w.containers.has(b.id));
  });

  test("a daemon that refuses the events stream is asked again with backoff, not in a loop", async () => {
    fake.eventsStatus = 503;
    follow();
    await Bun.sleep(1600);
    // 0, 250, 750 and 1750 ms: three or four tries; a loop without backoff makes hundreds.
    expect(fake.count("/events")).toBeGreaterThanOrEqual(2);
    expect(fake.count("/events")).toBeLessThanOrEqual(5);
    expect(logged(/GET \/events: 503.*retrying with backoff/).length).toBe(1);
  });

  test("a malformed event line is skipped; an event line over the bound ends the stream (reconnected), with no crash", async () => {
    const w = follow();
    await until("the events stream open", () => fake.eventStreams === 1);
    fake.raw("this is not JSON\n{\"Type\":\"container\"\n");
    const c = fake.add("after-junk", ON);
    fake.emit("start", c.id);
    await until("a good event after the junk is followed", () => w.containers.has(c.id));
    const listed = fake.count("/containers/json");
    // 1 MB is the bound for one line; a daemon (or something else on the socket) sending more is cut off.
    fake.raw(Buffer.alloc(1_200_000, "x"));
    await until("reconnected and listed again", () => fake.count("/containers/json") > listed, 5000);
    await until("served again", () => w.containers.has(c.id));
    expect(logged(/retrying with backoff/).length).toBe(1);
  });

  test("an inspect answer over the bound is refused: that container is not served, with one line; the others are", async () => {
    const huge = fake.add("huge", ON);
    const fine = fake.add("fine", ON);
    let written = 0;
    fake.inspectHook = async (id, s) => {
      if (id !== huge.id) return false;
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${100 << 20}\r\n\r\n`);
      const mb = Buffer.alloc(1 << 20, " ");
      let wake = () => {};
      s.on("close", () => wake());
      for (; written < 100 && !s.destroyed; written++) {
        if (!s.write(mb)) await new Promise<void>((ok) => ((wake = ok), s.once("drain", ok)));
      }
      s.destroy();
      return true;
    };
    const w = follow();
    await until("fine listed", () => w.containers.has(fine.id));
    await until("huge refused", () => logged(/larger than/).length > 0, 20_000);
    expect(w.containers.has(huge.id)).toBe(false);
    // Cut off at the bound (64 MB), not read to the end.
    expect(written).toBeLessThan(80);
    expect(logged(new RegExp(`container ${huge.id.slice(0, 12)}: GET /containers/.*larger than 67108864 bytes; not served`)).length).toBe(1);
  }, 30_000);
});

describe("ContainerTenants", () => {
  const loaded = loadLayered({ flags: { listen: ["127.0.0.1:8080"], upstream: "http://127.0.0.1:9000" } });
  let tenants: ContainerTenants | undefined;
  afterEach(() => tenants?.stop());

  /** The tenants now, once the containers in `ids` are all known to the watch. */
  async function take(count: number): Promise<Map<string, { netns: string; name: string }>> {
    let out: ReturnType<ContainerTenants["take"]>;
    await until(`${count} containers known`, () => {
      out = tenants!.take(loaded, (spec, containers) => clashOf(spec, containers, (p) => p)?.message, (p) => p) ?? out;
      return out && [...out.values()].length >= count && out;
    });
    return out!;
  }

  function start(): void {
    tenants = new ContainerTenants(() => {});
    tenants.follow([fake.path]);
    tenants.start();
  }

  test("nsproxy.tenant names the tenant; a bad one, or a bad label, skips its container with one line naming both; from the image it is ignored", async () => {
    fake.images.set("sha256:hostile", { "nsproxy.tenant": "bank", "nsproxy.header.X-Plan": "gold" });
    fake.add("web-7f3a", { ...ON, "nsproxy.tenant": "shop", "nsproxy.header.X-Plan": "silver" });
    fake.add("from-image", { "nsproxy.enable": "True" }, { image: "sha256:hostile" });
    fake.add("bad-name", { ...ON, "nsproxy.tenant": "no/slashes" });
    fake.add("bad-label", { ...ON, "nsproxy.max_connections": "lots" });
    fake.add("-dash-first", ON);
    start();
    const out = await take(2);
    await until("the skips logged", () => lines.filter((l) => l.level === "error").length >= 3);
    expect([...out.keys()].sort()).toEqual(["from-image", "shop"]);
    expect((out.get("shop") as unknown as { headers: Record<string, string> }).headers).toEqual({ "X-Plan": "silver" });
    expect((out.get("from-image") as unknown as { headers: Record<string, string> }).headers).toEqual({});
    expect(logged(/skipping container bad-name: label nsproxy\.tenant: "no\/slashes" is not a valid tenant name/).length).toBe(1);
    expect(logged(/skipping container bad-label: label nsproxy\.max_connections: /).length).toBe(1);
    expect(logged(/skipping container -dash-first: its name is not a valid tenant name.*nsproxy\.tenant=NAME/).length).toBe(1);
    expect(logged(/container from-image: ignoring labels that come from its image.*nsproxy\.tenant/).length).toBe(1);
    // Asked again, nothing new is logged.
    fake.emit("update", [...fake.containers.values()].find((c) => c.name === "bad-label")!.id);
    await Bun.sleep(100);
    tenants!.take(loaded, () => undefined, (p) => p);
    expect(logged(/skipping container bad-label/).length).toBe(1);
  });

  for (const order of ["older first", "newer first"]) {
    test(`two containers claiming one tenant name, or one ingress host: the older keeps it whichever came first (${order}), with one line`, async () => {
      const older = fake.add("shop-old", { ...ON, "nsproxy.tenant": "shop" });
      const newer = fake.add("shop-new", { ...ON, "nsproxy.tenant": "shop" });
      const ingress = { ...ON, "nsproxy.ingress_hosts": "shop.example.com", "nsproxy.ingress_backend": "127.0.0.1:3000" };
      const hostA = fake.add("a", ingress);
      const hostB = fake.add("b", ingress);
      for (const c of [older, newer, hostA, hostB]) c.running = false;
      start();
      await until("the events stream open", () => fake.eventStreams === 1);
      const first = order === "older first" ? [older, hostA] : [newer, hostB];
      const then = order === "older first" ? [newer, hostB] : [older, hostA];
      const startAll = (cs: typeof first) => {
        for (const c of cs) {
          c.running = true;
          fake.emit("start", c.id);
        }
      };
      startAll(first);
      await take(2).catch((e) => {
        throw new Error(`${(e as Error).message}: ${JSON.stringify(lines)}`);
      });
      startAll(then);
      await until("all four inspected", () => [older, newer, hostA, hostB].every((c) => inspectsOf(c.id) > 0));
      await Bun.sleep(100);
      const out = tenants!.take(loaded, (spec, containers) => clashOf(spec, containers, (p) => p)?.message, (p) => p)!;
      expect(out.get("shop")!.netns).toBe(older.sandbox);
      expect([...out.keys()].sort()).toEqual(["a", "shop"]);
      expect(logged(/skipping container shop-new: container shop-old, created before it, is tenant 'shop' already/).length).toBe(1);
      expect(logged(/skipping container b: ingress host shop\.example\.com already belongs to tenant 'a'/).length).toBe(1);
    });
  }
});
