// Helpers of the shared runtime cases (net.case.ts): record what one end of a connection saw, wait for it, write
// with backpressure. Only node: modules and the engine's types, so the cases run unchanged under Bun and Deno.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import type { ClientSink, Duplex, ListenTls, Peer, UpstreamAddress, UpstreamEvents } from "../engine/types.ts";
import type { Listener, Runtime } from "./types.ts";

/** How a case file registers its cases: bun:test's `test`, or Deno.test. `skip`: why the case cannot run here. */
export type TestFn = (name: string, fn: () => Promise<void>, skip?: string) => void;

/** Resolves once `cond()` holds; rejects after `ms` naming what was awaited. */
export async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** What one end of a connection saw, in order; delivered buffers are kept as handed over (never copied). */
export class Seen {
  readonly events: string[] = [];
  readonly chunks: Uint8Array[] = [];
  error: string | undefined;
  private waiters: { event: string; resolve: () => void }[] = [];

  record(event: string): void {
    this.events.push(event);
    for (const w of this.waiters.filter((w) => w.event === event)) w.resolve();
    this.waiters = this.waiters.filter((w) => w.event !== event);
  }

  data(d: Uint8Array): void {
    this.chunks.push(d);
    this.record("data");
  }

  /** The next time `event` is recorded. */
  next(event: string): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ event, resolve }));
  }

  count(event: string): number {
    return this.events.filter((e) => e === event).length;
  }

  get length(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }

  text(): string {
    return new TextDecoder().decode(join(this.chunks));
  }
}

export function join(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A client sink that records into `seen`; `more` runs after the record (to answer, pause, close…). */
export function sinkOf(seen: Seen, more: Partial<ClientSink> = {}): ClientSink {
  return {
    onClientData: (d) => (seen.data(d), more.onClientData?.(d)),
    onClientDrain: () => (seen.record("drain"), more.onClientDrain?.()),
    onClientEnd: () => (seen.record("end"), more.onClientEnd?.()),
    onClientClose: () => (seen.record("close"), more.onClientClose?.()),
    onHandshake: () => (seen.record("handshake"), more.onHandshake?.()),
    onHandshakeFailed: (why) => ((seen.error = why), seen.record("handshake-failed"), more.onHandshakeFailed?.(why)),
  };
}

/** One accepted connection as the hooks saw it. */
export interface Accepted {
  sock: Duplex;
  peer: Peer;
  seen: Seen;
}

/** A dialed connection: `sock` once open; `seen.error` holds the reason when it closed with one. */
export interface Dialed {
  sock: Duplex | undefined;
  seen: Seen;
}

/** Dial `to` with recording events (`halfOpen` adds onEnd, as TCP mode does); resolves on open or on close. */
export function dialed(rt: Runtime, to: UpstreamAddress, dial: (to: UpstreamAddress, e: UpstreamEvents) => void = rt.dial): Promise<Dialed> {
  const d: Dialed = { sock: undefined, seen: new Seen() };
  return new Promise((resolve) => {
    const events: UpstreamEvents = {
      onOpen: (sock) => ((d.sock = sock), d.seen.record("open"), resolve(d)),
      onData: (data) => d.seen.data(data),
      onDrain: () => d.seen.record("drain"),
      // Bun reports some closes twice (a refused certificate: with the reason, then without); the engine takes
      // the first, and so does this record.
      onClose: (error) => (d.seen.count("close") === 0 && (d.seen.error = error), d.seen.record("close"), resolve(d)),
      ...(to.halfOpen ? { onEnd: () => d.seen.record("end") } : {}),
    };
    dial(to, events);
  });
}

/** How far a writeAll() has got: bytes taken, and how many writes took fewer bytes than given. */
export interface Progress {
  written: number;
  short: number;
}

/** Write all of `data` as the engine does: keep what write() did not take and wait for drain. */
export async function writeAll(sock: Duplex, seen: Seen, data: Uint8Array, progress: Progress = { written: 0, short: 0 }, chunk = 64 * 1024): Promise<Progress> {
  while (progress.written < data.length) {
    const piece = data.subarray(progress.written, Math.min(progress.written + chunk, data.length));
    const drained = seen.next("drain");
    const n = Math.max(0, sock.write(piece));
    progress.written += n;
    if (n === piece.length) continue;
    progress.short++;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stuck = new Promise<string>((resolve) => (timer = setTimeout(() => resolve("stuck"), 10_000)));
    const woke = await Promise.race([drained.then(() => "drain"), seen.next("close").then(() => "close"), stuck]);
    clearTimeout(timer);
    if (woke !== "drain") throw new Error(`${woke === "close" ? "closed" : "no drain for 10 s"} while writing (${progress.written} of ${data.length} bytes written)`);
  }
  return progress;
}

/** Write `text` on a dialed connection, waiting for drain as needed (a TLS dialer takes nothing before its handshake). */
export function send(d: Dialed, text: string): Promise<Progress> {
  return writeAll(d.sock!, d.seen, bytes(text));
}

/** A TCP port free on 127.0.0.1 right now (the kernel's pick, released at once). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export const bytes = (s: string) => new TextEncoder().encode(s);

/** A pattern no two nearby offsets share, so a reused or reordered buffer shows in the comparison. */
export function pattern(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + (i >>> 8)) & 0xff;
  return out;
}

export function tempDir(): string {
  return mkdtempSync(`${tmpdir()}/nsproxy-runtime-case-`);
}

/** A self-signed certificate for 127.0.0.1 (openssl, in a directory removed at once), or undefined without openssl. */
export function selfSigned(): { cert: string; key: string } | undefined {
  const dir = tempDir();
  // CA:FALSE: rustls (Deno) refuses a CA certificate presented as the server's own.
  const args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"];
  const ext = ["-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"];
  try {
    execFileSync("openssl", [...args, ...ext, "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`], { stdio: "pipe" });
    return { cert: readFileSync(`${dir}/cert.pem`, "utf8"), key: readFileSync(`${dir}/key.pem`, "utf8") };
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Server {
  port: number;
  accepted: Accepted[];
  listener: Listener;
}

export interface ServeOptions {
  port?: number;
  tls?: ListenTls;
  /** Runs inside accept(), before the sink is returned: what the sink does besides recording. */
  serve?: (a: Accepted) => Partial<ClientSink> | void;
  /** Refuse every connection: this closes the socket inside accept(), which then returns undefined. */
  refuse?: (sock: Duplex) => void;
}

/** A listener on 127.0.0.1 whose accepted connections are recorded (and served as `opts` says). */
export async function listen(rt: Runtime, opts: ServeOptions = {}): Promise<Server> {
  const port = opts.port ?? (await freePort());
  const accepted: Accepted[] = [];
  const listener = rt.listenTcp(
    "127.0.0.1",
    port,
    {
      accept(sock, peer) {
        const a: Accepted = { sock, peer, seen: new Seen() };
        accepted.push(a);
        if (opts.refuse) return void opts.refuse(sock);
        return sinkOf(a.seen, opts.serve?.(a) ?? {});
      },
    },
    opts.tls,
  );
  return { port, accepted, listener };
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
