// Unit tests of the reconciler with fake workers and fake namespaces: no root, no threads, no kernel namespaces.
import { afterEach, beforeEach, describe, expect, spyOn, test } from "bun:test";
import type { TenantSpec } from "../config/types.ts";
import { logger } from "../log.ts";
import { Reconciler } from "./reconciler.ts";
import type { AttachFailure, Namespaces, Workers } from "./seams.ts";
import { spec } from "../../test/helpers/tenant-spec.ts";

/** Namespace files by path (their dev:ino), and every descriptor the reconciler holds open. */
class FakeNamespaces implements Namespaces {
  readonly files = new Map<string, string>();
  readonly openFds = new Map<number, string>();
  private nextFd = 100;

  open(ref: string): { fd: number; identity: string } {
    const identity = this.files.get(ref);
    if (identity === undefined) throw Object.assign(new Error(`open ${ref}: No such file or directory`), { code: "ENOENT" });
    const fd = this.nextFd++;
    this.openFds.set(fd, ref);
    return { fd, identity };
  }
  identityAt(path: string): string | undefined | null {
    return this.files.get(path);
  }
  close(fd: number): void {
    if (!this.openFds.delete(fd)) throw new Error(`fd ${fd} closed but not open`);
  }
  strayThreads() {
    return [];
  }
  socketOwner(inodes: number[]) {
    return inodes.includes(777) ? { pid: 4242, comm: "nsproxy" } : undefined;
  }
}

type Step = (spec: TenantSpec) => Promise<AttachFailure | undefined> | AttachFailure | undefined;

/** Workers that record what each one listens for; every tenant is placed on every worker, as with few tenants. */
class FakeWorkers implements Workers {
  /** Worker index → tenant name → the namespace it was attached through (its path, looked up from the fd). */
  readonly listening: Map<string, string>[];
  readonly calls: string[] = [];
  readonly ingress = new Map<string, { fd: number; down?: string }>();
  /** Decides how an attach ends (default: it succeeds). */
  step: Step = () => undefined;
  stranded = 0;
  onReplaced: (index: number) => void = () => {};
  onLingerEnd: () => void = () => {};

  constructor(
    private readonly ns: FakeNamespaces,
    size = 2,
  ) {
    this.listening = Array.from({ length: size }, () => new Map());
  }

  plan(): void {}

  async attach(s: TenantSpec, nsFd: number): Promise<AttachFailure | undefined> {
    this.calls.push(`attach ${s.name}`);
    if (s.listen.length === 0) {
      for (const w of this.listening) w.delete(s.name);
      return undefined;
    }
    return this.listenIn(this.listening.map((_, i) => i), s, nsFd);
  }

  async reattach(index: number, s: TenantSpec, nsFd: number): Promise<AttachFailure | undefined> {
    this.calls.push(`reattach ${index} ${s.name}`);
    if (!this.placedOn(s.name, index)) return undefined;
    return this.listenIn([index], s, nsFd);
  }

  /** Names placed on every worker (a replaced worker's map is emptied, the placement stays). */
  private readonly placed = new Set<string>();

  private async listenIn(indexes: number[], s: TenantSpec, nsFd: number): Promise<AttachFailure | undefined> {
    // The descriptor must stay open until the workers answer: they enter the namespace through it.
    const path = this.ns.openFds.get(nsFd);
    if (path === undefined) throw new Error(`attach ${s.name} through fd ${nsFd}, which is not open`);
    const failure = await this.step(s);
    if (this.ns.openFds.get(nsFd) !== path) throw new Error(`fd ${nsFd} of ${s.name} closed while the workers used it`);
    if (failure) {
      await this.detach(s.name);
      return failure;
    }
    this.placed.add(s.name);
    for (const i of indexes) this.listening[i]!.set(s.name, path);
    return undefined;
  }

  placedOn(name: string, index: number): boolean {
    return this.placed.has(name) && index < this.listening.length;
  }

  async detach(name: string, graceMs = 0): Promise<void> {
    this.calls.push(`detach ${name} ${graceMs}`);
    this.placed.delete(name);
    for (const w of this.listening) w.delete(name);
  }

  async ingressListen(): Promise<AttachFailure | undefined> {
    return undefined;
  }

  async ingressSet(s: TenantSpec, nsFd: number, down?: string, only?: number): Promise<void> {
    if (nsFd >= 0 && !this.ns.openFds.has(nsFd)) throw new Error(`ingress of ${s.name} set to fd ${nsFd}, which is not open`);
    this.stillOpen(s.name);
    this.calls.push(`ingress-set ${s.name}${only === undefined ? "" : ` ${only}`}`);
    this.ingress.set(s.name, { fd: nsFd, ...(down ? { down } : {}) });
  }

  async ingressDrop(name: string): Promise<void> {
    this.stillOpen(name);
    this.calls.push(`ingress-drop ${name}`);
    this.ingress.delete(name);
  }

  /** Until the workers answer a change of `name`'s entry, they may connect through the fd they have: it must be open. */
  private stillOpen(name: string): void {
    const fd = this.ingress.get(name)?.fd ?? -1;
    if (fd >= 0 && !this.ns.openFds.has(fd)) throw new Error(`ingress fd ${fd} of ${name} closed while the workers still had it`);
  }

  /** A worker died and its replacement is up: it holds nothing until the reconciler attaches again. */
  replace(index: number): void {
    this.listening[index]!.clear();
    this.onReplaced(index);
  }
}

let ns: FakeNamespaces;
let workers: FakeWorkers;
let rec: Reconciler;
let quiet: { mockRestore(): void }[] = [];

beforeEach(() => {
  // The reconciler says what happens in the log; these tests look at the state instead.
  quiet = (["info", "warn", "error", "success", "debug"] as const).map((level) => spyOn(logger, level).mockImplementation(((..._args: unknown[]) => {}) as typeof logger.info));
  ns = new FakeNamespaces();
  workers = new FakeWorkers(ns);
  rec = new Reconciler({ workers, namespaces: ns, fdLimit: 1 << 20, shutdownGraceMs: 5000, ingressListen: [] });
});

afterEach(() => {
  rec.stop();
  for (const q of quiet) q.mockRestore();
});

const stateOf = (name: string) => rec.tenants.get(name)?.state;
/** Let queued promise steps (the ingress chain, a detach then attach) run. */
const settle = () => new Promise((r) => setTimeout(r, 5));

describe("apply", () => {
  test("adds: each tenant listens in every worker through its own namespace, and no descriptor stays open", async () => {
    ns.files.set("/run/netns/acme", "1:10");
    ns.files.set("/run/netns/globex", "1:11");
    const r = await rec.apply([spec("acme"), spec("globex")]);
    expect(r).toEqual({ added: ["acme", "globex"], removed: [], replaced: [], unchanged: 0 });
    expect(stateOf("acme")).toBe("serving");
    expect(rec.tenants.get("acme")!.identity).toBe("1:10");
    for (const w of workers.listening) expect([...w]).toEqual([["acme", "/run/netns/acme"], ["globex", "/run/netns/globex"]]);
    expect(ns.openFds.size).toBe(0);
  });

  test("a namespace not there yet leaves the tenant waiting, with the errno, and the others serving", async () => {
    ns.files.set("/run/netns/acme", "1:10");
    await rec.apply([spec("acme"), spec("later")]);
    expect(stateOf("acme")).toBe("serving");
    expect(stateOf("later")).toBe("waiting");
    expect(rec.tenants.get("later")!.error).toBe("open /run/netns/later: No such file or directory [ENOENT]");
    expect(workers.calls).not.toContain("attach later");
    expect(rec.counts()).toEqual({ total: 2, serving: 1, waiting: 1, failed: 0 });
  });

  test("two paths that turn out to name one namespace: the first attached keeps the address, the later fails naming it, and serves once it is gone", async () => {
    // Accepted while /proc/42/ns/net was not there; now both paths are the namespace 1:10.
    ns.files.set("/run/netns/b", "1:10");
    ns.files.set("/proc/42/ns/net", "1:10");
    await rec.apply([spec("b"), spec("alias", { netns: "/proc/42/ns/net", listen: [{ host: "0.0.0.0", port: 8080, text: "0.0.0.0:8080" }] })]);
    const states = [stateOf("alias"), stateOf("b")].sort();
    expect(states).toEqual(["failed", "serving"]);
    const [loser, winner] = stateOf("alias") === "failed" ? ["alias", "b"] : ["b", "alias"];
    expect(rec.tenants.get(loser)!.error).toMatch(new RegExp(`^tenant '${winner}' already listens on .* in this namespace \\(.* is the namespace .* names\\); .* is refused \\[EADDRINUSE\\]$`));
    for (const w of workers.listening) expect([...w.keys()]).toEqual([winner]);
    // Another port in the same namespace is no clash; the winner removed, the loser serves at its retry.
    await rec.apply([spec(loser, rec.tenants.get(loser)!.spec), spec("c", { netns: "/run/netns/b", listen: [{ host: "127.0.0.1", port: 9, text: "127.0.0.1:9" }] })]);
    expect(stateOf("c")).toBe("serving");
    await new Promise((r) => setTimeout(r, 1100));
    expect(stateOf(loser)).toBe("serving");
  });

  test("an address a stranger holds fails the tenant naming the namespace and the holder's pid (never shared)", async () => {
    ns.files.set("/run/netns/acme", "1:10");
    ns.files.set("/run/netns/globex", "1:11");
    const taken = "listen 127.0.0.1:8080: Address already in use in this namespace, by a listener that is not this tenant's";
    workers.step = (s) => (s.name === "acme" ? { message: taken, code: "EADDRINUSE", listen: "127.0.0.1:8080", holders: [777] } : undefined);
    await rec.apply([spec("acme"), spec("globex")]);
    expect(stateOf("acme")).toBe("failed");
    expect(rec.tenants.get("acme")!.error).toBe("listen 127.0.0.1:8080: Address already in use in /run/netns/acme, by a listener that is not this tenant's: pid 4242 (nsproxy); not shared [EADDRINUSE]");
    expect(stateOf("globex")).toBe("serving");
    workers.step = () => ({ message: taken, code: "EADDRINUSE", holders: [1] });
    await rec.apply([spec("acme", { headers: { a: "b" } }), spec("globex")]);
    expect(rec.tenants.get("acme")!.error).toEndWith("by a listener that is not this tenant's; its process could not be found; not shared [EADDRINUSE]");
  });

  test("replaces only a changed spec; the same spec again touches nothing", async () => {
    ns.files.set("/run/netns/acme", "1:10");
    ns.files.set("/run/netns/globex", "1:11");
    const acme = spec("acme");
    const globex = spec("globex");
    await rec.apply([acme, globex]);
    workers.calls.length = 0;
    const changed = spec("acme", { headers: { "X-Plan": "gold" } });
    const r = await rec.apply([changed, spec("globex", { source: "tenants-dir" })]);
    expect(r).toEqual({ added: [], removed: [], replaced: ["acme"], unchanged: 1 });
    // A re-attach binds the new listeners before anything of the old goes: no detach at all.
    expect(workers.calls).toEqual(["attach acme"]);
    expect(rec.tenants.get("acme")!.spec).toBe(changed);
    expect(stateOf("acme")).toBe("serving");
  });

  test("removes: the workers let the tenant go with the grace asked for", async () => {
    ns.files.set("/run/netns/acme", "1:10");
    await rec.apply([spec("acme")]);
    const r = await rec.apply([], 250);
    expect(r.removed).toEqual(["acme"]);
    expect(workers.calls).toContain("detach acme 250");
    expect(rec.tenants.size).toBe(0);
    for (const w of workers.listening) expect(w.size).toBe(0);
  });

  test("an attach outrun by a removal records nothing, and its descriptor is closed", async () => {
    ns.files.set("/run/netns/acme", "1:10");
    let release!: () => void;
    workers.step = () => new Promise<undefined>((r) => (release = () => r(undefined)));
    const first = rec.apply([spec("acme")]);
    await settle();
    const removal = rec.apply([]);
    release();
    await Promise.all([first, removal]);
    expect(rec.tenants.size).toBe(0);
    expect(ns.openFds.size).toBe(0);
  });
});

describe("following namespaces", () => {
  test("a namespace that disappears is let go and waited for; when it comes back the tenant serves in the new one", async () => {
    ns.files.set("/run/netns/acme", "1:10");
    await rec.apply([spec("acme")]);
    ns.files.delete("/run/netns/acme");
    await rec.followNamespaces();
    await settle();
    expect(workers.calls).toContain("detach acme 1000");
    expect(stateOf("acme")).toBe("waiting");
    expect(rec.tenants.get("acme")!.error).toContain("ENOENT");
    for (const w of workers.listening) expect(w.has("acme")).toBe(false);

    // Back, as another namespace under the same path: attached now, not at the next backoff.
    ns.files.set("/run/netns/acme", "1:99");
    workers.calls.length = 0;
    await rec.followNamespaces();
    expect(workers.calls).toEqual(["attach acme"]);
    expect(stateOf("acme")).toBe("serving");
    expect(rec.tenants.get("acme")!.identity).toBe("1:99");
  });

  test("a namespace replaced under the same path is left and the new one attached", async () => {
    ns.files.set("/run/netns/acme", "1:10");
    await rec.apply([spec("acme")]);
    ns.files.set("/run/netns/acme", "1:20");
    await rec.followNamespaces();
    await settle();
    expect(workers.calls).toEqual(["attach acme", "detach acme 1000", "attach acme"]);
    expect(rec.tenants.get("acme")!.identity).toBe("1:20");
    expect(stateOf("acme")).toBe("serving");
  });

  test("an unchanged namespace is not touched", async () => {
    ns.files.set("/run/netns/acme", "1:10");
    await rec.apply([spec("acme")]);
    await rec.followNamespaces();
    expect(workers.calls).toEqual(["attach acme"]);
  });
});

describe("workers that die", () => {
  test("a worker that dies mid-attach fails that tenant only; its replacement gets the serving tenants again", async () => {
    ns.files.set("/run/netns/acme", "1:10");
    ns.files.set("/run/netns/globex", "1:11");
    await rec.apply([spec("acme")]);
    // globex's attach is in flight when worker 1 dies: the pool answers every pending request so.
    workers.step = (s) => (s.name === "globex" ? { message: "worker 1 lost: worker exited", code: "EWORKER" } : undefined);
    await rec.apply([spec("acme"), spec("globex")]);
    expect(stateOf("globex")).toBe("failed");
    expect(rec.tenants.get("globex")!.error).toBe("worker 1 lost: worker exited [EWORKER]");
    expect(rec.tenants.get("globex")!.retry).toBeDefined();
    expect(rec.attachFailures).toBe(1);
    expect(ns.openFds.size).toBe(0);

    workers.step = () => undefined;
    workers.calls.length = 0;
    workers.replace(1);
    await settle();
    expect(workers.calls).toEqual(["reattach 1 acme"]);
    expect(workers.listening[1]!.get("acme")).toBe("/run/netns/acme");
    expect(stateOf("acme")).toBe("serving");
  });

  test("the failed tenant is tried again after its backoff and serves", async () => {
    ns.files.set("/run/netns/globex", "1:11");
    workers.step = () => ({ message: "worker 0 lost: worker exited", code: "EWORKER" });
    await rec.apply([spec("globex")]);
    expect(stateOf("globex")).toBe("failed");
    workers.step = () => undefined;
    await new Promise((r) => setTimeout(r, 1100)); // the first retry comes after one second
    expect(stateOf("globex")).toBe("serving");
    expect(rec.tenants.get("globex")!.attempts).toBe(0);
  });
});

describe("ingress descriptors", () => {
  const ingress = { hosts: ["acme.example"], backend: { host: "127.0.0.1", port: 3000, text: "127.0.0.1:3000" } };

  test("the namespace fd stays open for the workers' ingress connects, and is closed once they dropped it", async () => {
    ns.files.set("/run/netns/acme", "1:10");
    await rec.apply([spec("acme", { ingress })]);
    await settle();
    const entry = workers.ingress.get("acme")!;
    expect(entry.fd).toBeGreaterThanOrEqual(0);
    expect(ns.openFds.get(entry.fd)).toBe("/run/netns/acme");
    await rec.apply([]);
    await settle();
    expect(workers.ingress.has("acme")).toBe(false);
    expect(ns.openFds.size).toBe(0);
  });

  test("a vanished namespace marks the hosts down, and the old fd closes only after the workers have the new one", async () => {
    ns.files.set("/run/netns/acme", "1:10");
    await rec.apply([spec("acme", { ingress })]);
    await settle();
    const old = workers.ingress.get("acme")!.fd;
    ns.files.delete("/run/netns/acme");
    await rec.followNamespaces();
    await settle();
    // Gone, then the attach that follows says why it cannot open it.
    expect(workers.ingress.get("acme")).toEqual({ fd: -1, down: "namespace /run/netns/acme: open /run/netns/acme: No such file or directory" });
    expect(ns.openFds.has(old)).toBe(false);
    ns.files.set("/run/netns/acme", "1:12");
    await rec.followNamespaces();
    await settle();
    const now = workers.ingress.get("acme")!;
    expect(ns.openFds.get(now.fd)).toBe("/run/netns/acme");
    expect(rec.tenants.get("acme")!.ingressDown).toBeUndefined();
  });
});
