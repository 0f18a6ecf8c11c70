// An in-process fake Docker Engine API on a unix socket: the endpoints the container provider calls, answered from a table the test edits.
import { existsSync, unlinkSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";

export interface FakeContainer {
  id: string;
  /** Without the leading "/" the API adds. */
  name: string;
  image: string;
  labels: Record<string, string>;
  running: boolean;
  pid: number;
  /** NetworkSettings.SandboxKey ("" as Podman gives). */
  sandbox: string;
  /** RFC 3339, as the API gives it. */
  created: string;
}

/** What one request asked for, as the fake saw it. */
export interface Seen {
  method: string;
  path: string;
}

/**
 * The fake daemon. `containers` and `images` are its state; `emit` writes an event to every open events stream
 * (a chunk each, as dockerd does); `dropEvents` ends them; `down`/`up` take the socket away and back.
 * `inspectHook` runs before an inspect is answered: to delay it, change the state meanwhile, or answer it itself.
 */
export class FakeDocker {
  readonly containers = new Map<string, FakeContainer>();
  readonly images = new Map<string, Record<string, string>>();
  readonly seen: Seen[] = [];
  inspectHook?: (id: string, sock: Socket) => Promise<boolean | void> | boolean | void;
  /** Podman: its own API answers beside Docker's (/libpod/_ping). */
  libpod = false;
  /** When set, /events answers with this status (a daemon that refuses to stream). */
  eventsStatus?: number;
  private server?: Server;
  private readonly streams = new Set<Socket>();
  private readonly open = new Set<Socket>();
  private n = 0;

  constructor(readonly path: string) {}

  async up(): Promise<void> {
    if (existsSync(this.path)) unlinkSync(this.path);
    const server = createServer((s) => this.accept(s));
    await new Promise<void>((ok) => server.listen(this.path, ok));
    this.server = server;
  }

  /** The daemon goes away: every connection cut, the socket file removed (connects fail with ENOENT). */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.open) s.destroy();
    this.streams.clear();
    if (server) await new Promise<void>((ok) => server.close(() => ok()));
    if (existsSync(this.path)) unlinkSync(this.path);
  }

  /** A running container labelled as given, with a sandbox file path; returns it (its id is 64 hex digits, its first 12 its own). */
  add(name: string, labels: Record<string, string>, more: Partial<FakeContainer> = {}): FakeContainer {
    const n = ++this.n;
    const c: FakeContainer = {
      id: n.toString(16).padStart(8, "0").repeat(8),
      name,
      image: "sha256:plain",
      labels,
      running: true,
      pid: 1000 + n,
      sandbox: `/run/fake-docker/netns/${n}`,
      created: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
      ...more,
    };
    this.containers.set(c.id, c);
    return c;
  }

  /** An event about a container, as one chunk of the events stream. */
  emit(action: string, id: string, attributes: Record<string, string> = {}): void {
    const time = Math.floor(Date.now() / 1000);
    this.raw(`${JSON.stringify({ status: action, id, Type: "container", Action: action, Actor: { ID: id, Attributes: attributes }, scope: "local", time })}\n`);
  }

  /** Raw bytes as one chunk of every events stream (a malformed line, a line without its end…). */
  raw(text: string | Buffer): void {
    const b = typeof text === "string" ? Buffer.from(text) : text;
    for (const s of this.streams) s.write(Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from("\r\n")]));
  }

  /** End every events stream as a daemon does when it stops (the last chunk, then close). */
  dropEvents(): void {
    for (const s of this.streams) s.end("0\r\n\r\n");
    this.streams.clear();
  }

  get eventStreams(): number {
    return this.streams.size;
  }

  count(prefix: string): number {
    return this.seen.filter((r) => r.path.startsWith(prefix)).length;
  }

  async close(): Promise<void> {
    await this.down();
  }

  private accept(s: Socket): void {
    this.open.add(s);
    s.on("close", () => {
      this.open.delete(s);
      this.streams.delete(s);
    });
    s.on("error", () => {});
    let head = "";
    const onData = (d: Buffer) => {
      head += d.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      s.off("data", onData);
      const [method = "", target = ""] = head.slice(0, head.indexOf("\r\n")).split(" ");
      this.seen.push({ method, path: target });
      void this.route(s, method, target);
    };
    s.on("data", onData);
  }

  private async route(s: Socket, method: string, target: string): Promise<void> {
    const url = new URL(target, "http://docker");
    const path = url.pathname;
    if (method !== "GET") return json(s, 405, { message: "method not allowed" });
    if (path === "/libpod/_ping" && this.libpod) {
      s.end("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK");
      return;
    }
    if (path === "/events") {
      if (this.eventsStatus) return json(s, this.eventsStatus, { message: "events refused" });
      this.streams.add(s);
      s.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
      return;
    }
    if (path === "/containers/json") {
      const filters = JSON.parse(url.searchParams.get("filters") ?? "{}") as { label?: string[] };
      const list = [...this.containers.values()].filter((c) => c.running && (filters.label ?? []).every((l) => hasLabel(this.labelsOf(c), l)));
      return json(s, 200, list.map((c) => ({ Id: c.id, Names: [`/${c.name}`], Labels: this.labelsOf(c) })));
    }
    const inspect = /^\/containers\/([^/]+)\/json$/.exec(path);
    if (inspect) {
      const id = decodeURIComponent(inspect[1]!);
      if (this.inspectHook && (await this.inspectHook(id, s)) === true) return;
      const c = this.find(id);
      if (!c) return json(s, 404, { message: `No such container: ${id}` });
      return json(s, 200, {
        Id: c.id,
        Name: `/${c.name}`,
        Image: c.image,
        Created: c.created,
        State: { Running: c.running, Pid: c.running ? c.pid : 0 },
        Config: { Labels: this.labelsOf(c) },
        NetworkSettings: { SandboxKey: c.running ? c.sandbox : "" },
      });
    }
    const image = /^\/images\/([^/]+)\/json$/.exec(path);
    if (image) {
      const id = decodeURIComponent(image[1]!);
      return json(s, 200, { Id: id, Config: { Labels: this.images.get(id) ?? null } });
    }
    return json(s, 404, { message: "page not found" });
  }

  /** The image's labels merged under the container's, as the daemon does at create time. */
  private labelsOf(c: FakeContainer): Record<string, string> {
    return { ...(this.images.get(c.image) ?? {}), ...c.labels };
  }

  private find(id: string): FakeContainer | undefined {
    return this.containers.get(id) ?? [...this.containers.values()].find((c) => c.name === id || c.id.startsWith(id));
  }
}

/** "key" or "key=value", as the API's label filter takes it. */
function hasLabel(labels: Record<string, string>, filter: string): boolean {
  const eq = filter.indexOf("=");
  return eq < 0 ? Object.hasOwn(labels, filter) : labels[filter.slice(0, eq)] === filter.slice(eq + 1);
}

function json(s: Socket, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  s.end(`HTTP/1.1 ${status} ${status === 200 ? "OK" : "Error"}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
}
