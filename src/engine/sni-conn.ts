// An sni:// connection: the ClientHello read (bounded, in time), the tenant picked by its server name, then a TCP-mode pipe to the tenant's TLS service.
import { concat } from "./bytes.ts";
import { sniOf } from "./sni.ts";
import { TcpConn } from "./tcp.ts";
import type { ClientSink, Duplex, Env, Route } from "./types.ts";

/** The SNI of a ClientHello may arrive in pieces: at most this much is buffered before giving up. */
export const MAX_HELLO_BYTES = 16 * 1024;

/** What an sni:// connection needs from the listener that accepted it (the worker's ingress table). */
export interface SniRoutes {
  /** The route for a server name, or why there is none (the connection is closed). */
  routeTls(name: string): Route | string;
  /** A connection closed before it was routed: counted and logged (rate-limited) by the owner. */
  refusedTls(why: string): void;
  /** The connection finished; called once. */
  release(conn: SniConn): void;
}

/**
 * Once routed, the connection is a TcpConn with the hello bytes first. The TLS session is between the
 * client and the tenant: nsproxy never sees plaintext or holds a key.
 */
export class SniConn implements ClientSink {
  /** Whoever accepted this connection (the runtime's bookkeeping); the engine never looks at it. */
  owner: unknown;
  /** The hello so far (the bytes received, joined). */
  private buf: Uint8Array | undefined;
  private inner: TcpConn | undefined;
  private readonly since: number;
  private done = false;

  constructor(
    private readonly client: Duplex,
    private readonly routes: SniRoutes,
    private readonly env: Env,
  ) {
    this.since = env.now();
  }

  onClientData(data: Uint8Array): void {
    if (this.inner) return this.inner.onClientData(data);
    if (this.done) return;
    this.buf = this.buf === undefined ? data : concat(this.buf, data);
    const r = sniOf(this.buf, MAX_HELLO_BYTES);
    if (r.kind === "more") return;
    if (r.kind !== "found") return this.refuse(r.kind === "none" ? "the ClientHello names no server (SNI)" : `not a TLS ClientHello: ${r.reason}`);
    const route = this.routes.routeTls(r.name);
    if (typeof route === "string") return this.refuse(route);
    const inner = new TcpConn(this.client, route, this.env, this.buf);
    this.buf = undefined;
    // The pipe's end is this connection's end.
    inner.owner = { release: () => this.finish() };
    this.inner = inner;
  }

  private refuse(why: string): void {
    this.routes.refusedTls(why);
    this.destroy();
  }

  onClientDrain(): void {
    this.inner?.onClientDrain();
  }

  onClientEnd(): void {
    if (this.inner) return this.inner.onClientEnd();
    this.destroy(); // the hello can never be complete
  }

  onClientClose(): void {
    if (this.inner) return this.inner.onClientClose();
    this.finish();
  }

  sweep(now: number): void {
    if (this.inner) return this.inner.sweep(now);
    if (!this.done && now - this.since >= this.env.limits.requestTimeoutMs) this.refuse("no complete ClientHello within request_timeout");
  }

  drain(): void {
    if (this.inner) this.inner.drain();
    else this.destroy();
  }

  destroy(): void {
    if (this.inner) return this.inner.destroy();
    if (this.done) return;
    this.client.terminate();
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.routes.release(this);
  }

  /** Not routed yet (no complete ClientHello): closing it loses no exchange. */
  get idle(): boolean {
    return !this.inner && !this.done;
  }

  /** For tests and diagnostics. */
  get state(): "hello" | "connecting" | "open" | "closed" {
    if (this.inner) return this.inner.state;
    return this.done ? "closed" : "hello";
  }
}
