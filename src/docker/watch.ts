// Follows one Docker Engine API socket (Docker, or Podman's compatible service): the running containers that opt in, kept current from the events stream.
import { logger } from "../log.ts";
import { EngineApiError, type Exchange, getJson, streamJson } from "./engine-api.ts";
import { ENABLE_LABEL, enabled, ownLabels } from "./labels.ts";

/** A running container that opted in: its name, its namespace, and the labels set on it (not its image's). */
export interface ContainerEntry {
  id: string;
  name: string;
  netns: string;
  labels: Record<string, string>;
  /** When it was created (ms since the epoch; 0 when unknown): the older of two containers claiming one tenant keeps it. */
  created: number;
  /** The socket it was seen through, for messages. */
  socket: string;
}

interface Inspect {
  Id: string;
  Name: string;
  Image: string;
  Created?: string;
  State?: { Running?: boolean; Pid?: number };
  Config?: { Labels?: Record<string, string> | null };
  NetworkSettings?: { SandboxKey?: string };
}

interface ImageInspect {
  Config?: { Labels?: Record<string, string> | null };
}

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 10_000;
/**
 * Inspects in flight at once: a burst of events (or the list of a daemon with 10,000 containers) must not open
 * a connection each, out of the descriptors the tenants' listeners need.
 */
const INSPECT_CONCURRENCY = 8;
/** Events after which the container is gone: released at once, without asking the daemon again. */
const GONE = new Set(["die", "stop", "destroy"]);
/** Events that change nothing nsproxy reads. */
const IGNORED = /^(exec_|health_status|attach|detach|top|resize|export|commit|copy|archive-path|extract-to-dir|mount|unmount|cleanup|init)/;

export class DockerWatch {
  /** Opted-in running containers by id. */
  readonly containers = new Map<string, ContainerEntry>();
  private stopped = false;
  private events?: Exchange;
  private sleep?: ReturnType<typeof setTimeout>;
  /** Bumped on every event for an id: an inspect answered for an older one is dropped. */
  private readonly generation = new Map<string, number>();
  private seq = 0;
  private readonly seenAt = new Map<string, number>();
  private readonly imageLabels = new Map<string, Record<string, string>>();
  private readonly reported = new Set<string>();
  /** Containers to inspect, each once however many events named it meanwhile. */
  private readonly queued = new Set<string>();
  private inFlight = 0;

  constructor(
    readonly socket: string,
    private readonly onChange: () => void,
  ) {}

  start(): void {
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.events?.close();
    if (this.sleep) clearTimeout(this.sleep);
  }

  /** Connect, list, follow; when the socket goes, keep what is known out of service and try again with backoff. */
  private async run(): Promise<void> {
    let delay = BACKOFF_MIN_MS;
    let down: string | undefined;
    while (!this.stopped) {
      try {
        await this.session(() => {
          if (down !== undefined) logger.info(`docker ${this.socket}: connected again; following containers`);
          down = undefined;
          delay = BACKOFF_MIN_MS;
        });
        if (this.stopped) return;
        throw new EngineApiError("the events stream ended");
      } catch (e) {
        if (this.stopped) return;
        const reason = (e as Error).message;
        if (down === undefined) logger.warn(`docker ${this.socket}: ${reason}; its containers are released, retrying with backoff`);
        down = reason;
      }
      // Without the events, what is known goes stale at once (a container can stop unseen): release it.
      if (this.containers.size) {
        this.containers.clear();
        this.onChange();
      }
      await new Promise<void>((ok) => (this.sleep = setTimeout(ok, delay)));
      delay = Math.min(delay * 2, BACKOFF_MAX_MS);
    }
  }

  /** One connection's life: the events first (nothing between list and follow is missed), then the list. */
  private async session(connected: () => void): Promise<void> {
    const filters = encodeURIComponent(JSON.stringify({ type: ["container"] }));
    const events = streamJson(this.socket, `/events?filters=${filters}`, (e) => this.onEvent(e));
    this.events = events;
    const status = await events.head;
    if (status !== 200) throw new EngineApiError(`GET /events: ${status}`, status);
    await this.resync();
    connected();
    await events.end;
  }

  private async resync(): Promise<void> {
    const since = ++this.seq;
    const filters = encodeURIComponent(JSON.stringify({ label: [ENABLE_LABEL] }));
    const list = await getJson<{ Id: string }[]>(this.socket, `/containers/json?filters=${filters}`);
    const ids = new Set(list.map((c) => c.Id));
    let changed = false;
    for (const id of this.containers.keys()) {
      if (ids.has(id) || (this.seenAt.get(id) ?? 0) > since) continue;
      this.containers.delete(id);
      changed = true;
    }
    if (changed) this.onChange();
    for (const id of ids) this.enqueue(id);
  }

  private onEvent(e: unknown): void {
    const ev = e as { Type?: string; Action?: string; Actor?: { ID?: string }; id?: string };
    const id = ev.Actor?.ID ?? ev.id;
    const action = ev.Action ?? "";
    if (ev.Type !== undefined && ev.Type !== "container") return;
    if (!id || IGNORED.test(action)) return;
    // Any answer to an inspect started before this event is stale.
    this.bump(id);
    if (GONE.has(action)) {
      this.queued.delete(id);
      this.seenAt.delete(id);
      if (this.containers.delete(id)) this.onChange();
      // A stopped container needs nothing more; forget it unless an inspect is still out (its answer is dropped).
      if (this.inFlight === 0 && this.generation.size > 10_000) this.generation.clear();
      return;
    }
    this.enqueue(id);
  }

  private enqueue(id: string): void {
    this.queued.add(id);
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < INSPECT_CONCURRENCY && this.queued.size && !this.stopped) {
      const id = this.queued.values().next().value as string;
      this.queued.delete(id);
      this.inFlight++;
      void this.refresh(id).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private bump(id: string): number {
    const g = (this.generation.get(id) ?? 0) + 1;
    this.generation.set(id, g);
    return g;
  }

  /** Ask the daemon what `id` is now, and keep, change or drop its entry accordingly. */
  private async refresh(id: string): Promise<void> {
    // A container listed at connect has had no event yet: generation 0, like one whose count was cleared.
    const generation = () => this.generation.get(id) ?? 0;
    const g = generation();
    let entry: ContainerEntry | undefined;
    try {
      entry = await this.describe(id);
    } catch (e) {
      if (generation() !== g) return;
      if (!(e instanceof EngineApiError && e.status === 404)) {
        this.reportOnce(`${id}:${(e as Error).message}`, () => logger.warn(`docker ${this.socket}: container ${id.slice(0, 12)}: ${(e as Error).message}; not served`));
      }
      entry = undefined;
    }
    if (generation() !== g) return;
    const before = this.containers.get(id);
    if (!entry) {
      this.seenAt.delete(id);
      if (before && this.containers.delete(id)) this.onChange();
      return;
    }
    this.seenAt.set(id, ++this.seq);
    if (before && before.name === entry.name && before.netns === entry.netns && JSON.stringify(before.labels) === JSON.stringify(entry.labels)) return;
    this.containers.set(id, entry);
    this.onChange();
  }

  /** The entry for a running container that opted in with its own labels; undefined for any other. */
  private async describe(id: string): Promise<ContainerEntry | undefined> {
    const c = await getJson<Inspect>(this.socket, `/containers/${encodeURIComponent(id)}/json`);
    const pid = c.State?.Pid ?? 0;
    if (!c.State?.Running || pid <= 0) return undefined;
    const all = c.Config?.Labels ?? {};
    if (!enabled(all)) return undefined;
    const { own, ignored } = ownLabels(all, await this.labelsOfImage(c.Image));
    const name = c.Name.replace(/^\//, "");
    if (ignored.length) {
      this.reportOnce(`image:${c.Id}`, () => logger.warn(`docker: container ${name}: ignoring labels that come from its image, not set on the container: ${ignored.join(", ")}`));
    }
    if (!enabled(own)) return undefined;
    // The sandbox file is a bind mount of the namespace itself (a pid could be reused by another process);
    // Podman without a network namespace file of its own has none: then the container's first process.
    const sandbox = c.NetworkSettings?.SandboxKey ?? "";
    const netns = sandbox.startsWith("/") ? sandbox : `/proc/${pid}/ns/net`;
    return { id: c.Id, name, netns, labels: own, created: Date.parse(c.Created ?? "") || 0, socket: this.socket };
  }

  /** An image's own labels (an image id names fixed content, so they are kept). */
  private async labelsOfImage(image: string): Promise<Record<string, string>> {
    const known = this.imageLabels.get(image);
    if (known) return known;
    const i = await getJson<ImageInspect>(this.socket, `/images/${encodeURIComponent(image)}/json`);
    const labels = i.Config?.Labels ?? {};
    this.imageLabels.set(image, labels);
    return labels;
  }

  private reportOnce(key: string, report: () => void): void {
    if (this.reported.has(key)) return;
    if (this.reported.size > 10_000) this.reported.clear();
    this.reported.add(key);
    report();
  }
}
