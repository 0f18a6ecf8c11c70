// TCP mode: one client connection and its own upstream connection, bytes carried both ways untouched, with half-close, backpressure and timeouts.
import { Pipe } from "./pipe.ts";
import { Stat } from "./stats.ts";
import type { Duplex, Env, Route, UpstreamAddress, UpstreamEvents } from "./types.ts";

/** Client bytes held while the upstream connection opens; beyond this the client is paused. */
const MAX_EARLY = 64 * 1024;

/*
 * Half-close on a Bun socket (Bun 1.4.4, allowHalfOpen on both Bun.listen and Bun.connect, measured on loopback):
 * - end() closes the socket both ways at once, even with allowHalfOpen: `close` is reported inside the call,
 *   readyState is -1, nothing more is read, and a peer still sending gets EPIPE/ECONNRESET. Not a half-close.
 * - shutdown() (= shutdown(false)) sends FIN and keeps reading: write() returns -1 afterwards, the peer's
 *   bytes still arrive. When the peer's FIN comes after it, Bun reports `close`, not `end`.
 * - shutdown(true) stops the read side only (local `end` event); writing goes on. Not what a FIN needs.
 * - The peer's FIN arrives as the `end` event; a shutdown() after it makes Bun close the socket (`close`
 *   reported after the call returns).
 * So FIN goes out with Duplex.shutdown(), and a `close` after our FIN is the peer's FIN, not an error.
 */

/** The route's upstream with halfOpen set, made once per address object (the dialer caches TLS options by it). */
const halfOpen = new WeakMap<UpstreamAddress, UpstreamAddress>();
function halfOpenOf(to: UpstreamAddress): UpstreamAddress {
  if (to.halfOpen) return to;
  let h = halfOpen.get(to);
  if (!h) halfOpen.set(to, (h = { ...to, halfOpen: true }));
  return h;
}

export class TcpConn {
  /** Client to upstream: its sink is set when the upstream opens. */
  private readonly c2u: Pipe;
  /** Upstream to client: its source is set when the upstream opens. */
  private readonly u2c: Pipe;
  private up: Duplex | undefined;
  private connecting = true;
  /** Events of the upstream connection still matter (false once it closed or was let go). */
  private upLive = true;
  private clientGone = false;
  private finished = false;
  /** The dialer may report a failure inside dial(): acted on after the constructor returns. */
  private constructing = true;
  /** Connecting: since construction. Open: since the last byte moved either way. */
  private since: number;
  /** Why the upstream connection could not be made ("upstream tcp://…: connection refused"), for diagnostics. */
  failure: string | undefined;
  /** Whoever accepted this connection (the runtime's bookkeeping); the engine never looks at it. */
  owner: unknown;

  /**
   * `prefix` (a PROXY v2 header) goes to the upstream before any client byte. A function is called when
   * the upstream connection opens, the latest moment it can be made. `afterHandshake` (a TLS client whose
   * PROXY header must carry its TLS version): the upstream is dialed once the handshake is done
   * (onHandshake); a client that never finishes it is closed after request_timeout, counting nothing.
   */
  constructor(
    readonly client: Duplex,
    readonly route: Route,
    private readonly env: Env,
    private readonly prefix?: Uint8Array | (() => Uint8Array),
    afterHandshake = false,
  ) {
    this.since = env.now();
    this.c2u = new Pipe(client, undefined, MAX_EARLY);
    this.u2c = new Pipe(undefined, client);
    // TCP mode has no request to wait for: the upstream connection is made at once.
    const events: UpstreamEvents = {
      onOpen: (sock) => this.upOpen(sock),
      onData: (data) => this.upData(data),
      onDrain: () => this.upDrain(),
      onEnd: () => this.upEnd(),
      onClose: (error) => this.upClosed(error),
    };
    if (afterHandshake) this.pendingDial = events;
    else env.dial(halfOpenOf(route.upstream), events);
    this.constructing = false;
  }

  /** Events of the dial that waits for the client's TLS handshake (see the constructor). */
  private pendingDial: UpstreamEvents | undefined;

  /** The client's TLS handshake is done: dial now if that was waited for. */
  onHandshake(): void {
    const events = this.pendingDial;
    if (!events || this.finished) return;
    this.pendingDial = undefined;
    this.since = this.env.now();
    this.env.dial(halfOpenOf(this.route.upstream), events);
  }

  // ---------------------------------------------------------------- client side (the runtime's ClientSink)

  onClientData(data: Uint8Array): void {
    if (this.finished) return;
    const st = this.route.stats;
    st[Stat.BytesIn] = st[Stat.BytesIn]! + data.length;
    if (!this.connecting) this.since = this.env.now();
    this.c2u.push(data);
  }

  onClientDrain(): void {
    if (this.finished) return;
    this.since = this.env.now();
    this.u2c.flush();
    this.settle();
  }

  /** The client sent FIN: passed on to the upstream once what it sent has gone; the other way goes on. */
  onClientEnd(): void {
    if (this.finished) return;
    this.c2u.end();
    this.settle();
  }

  /** The client connection is gone: after our FIN this is its FIN; else a reset. */
  onClientClose(): void {
    if (this.finished || this.clientGone) return;
    this.clientGone = true;
    this.c2u.source = undefined;
    this.c2u.end();
    this.u2c.kill();
    this.settle();
  }

  /** An https:// listener's handshake failed: counted (never logged per attempt); the close follows. */
  onHandshakeFailed(why?: string): void {
    const st = this.route.stats;
    st[Stat.TlsHandshakeFailures] = st[Stat.TlsHandshakeFailures]! + 1;
    this.env.tlsFailed?.(this.route.tenant, "", why);
    this.destroy();
  }

  /** The tenant was detached: a byte stream has no boundary to stop at, so it runs until the caller's grace period ends and it calls destroy(). */
  drain(): void {}

  /** Close both sides now, whatever is in flight. */
  destroy(): void {
    this.finish(true);
  }

  /** Called by the worker's sweep: connect timeout while connecting, then idle timeout (no byte either way). */
  sweep(now: number): void {
    if (this.finished) return;
    const l = this.env.limits;
    if (this.pendingDial) {
      if (now - this.since >= l.requestTimeoutMs) this.destroy();
      return;
    }
    if (this.connecting) {
      if (now - this.since >= l.connectTimeoutMs) this.connectFailed(`connect timed out after ${l.connectTimeoutMs / 1000} s`);
      return;
    }
    if (now - this.since >= l.idleTimeoutMs) this.finish(false);
  }

  // ---------------------------------------------------------------- upstream side

  private upOpen(sock: Duplex): void {
    if (this.finished || !this.upLive) {
      sock.terminate();
      return;
    }
    this.connecting = false;
    this.up = sock;
    this.since = this.env.now();
    const prefix = typeof this.prefix === "function" ? this.prefix() : this.prefix;
    if (prefix !== undefined && prefix.length > 0) this.c2u.unshift(prefix);
    this.c2u.sink = sock;
    this.u2c.source = sock;
    this.c2u.flush();
    this.settle();
  }

  private upData(data: Uint8Array): void {
    if (this.finished || !this.upLive) return;
    this.since = this.env.now();
    if (!this.u2c.push(data)) return; // the client is gone
    const st = this.route.stats;
    st[Stat.BytesOut] = st[Stat.BytesOut]! + data.length;
  }

  private upDrain(): void {
    if (this.finished || !this.upLive) return;
    this.since = this.env.now();
    this.c2u.flush();
    this.settle();
  }

  /** The upstream sent FIN: passed on to the client once what it sent has gone; the other way goes on. */
  private upEnd(): void {
    if (this.finished || !this.upLive) return;
    this.u2c.end();
    this.settle();
  }

  private upClosed(error?: string): void {
    if (this.finished || !this.upLive) return;
    if (this.constructing) {
      // Reported inside dial() (a missing unix socket): the caller has not registered this connection yet.
      queueMicrotask(() => this.upClosed(error));
      return;
    }
    this.upLive = false;
    if (this.connecting) {
      this.connectFailed(error ?? "cannot connect");
      return;
    }
    this.up = undefined;
    this.u2c.source = undefined;
    this.u2c.end();
    this.c2u.kill();
    this.settle();
  }

  /** No upstream, so no byte can explain it to the client: it is closed. */
  private connectFailed(reason: string): void {
    const st = this.route.stats;
    st[Stat.UpstreamConnectFailures] = st[Stat.UpstreamConnectFailures]! + 1;
    this.failure = `upstream ${this.route.upstreamText}: ${reason}`;
    this.finish(false);
  }

  // ---------------------------------------------------------------- closing

  /** Both directions are over (FIN passed on, or the sink gone): close what is left. */
  private settle(): void {
    if (!this.finished && this.c2u.over && this.u2c.over) this.finish(false);
  }

  /** `abort`: RST both ways (destroy); else a plain close, after what was written. */
  private finish(abort: boolean): void {
    if (this.finished) return;
    this.finished = true;
    this.upLive = false;
    this.c2u.drop();
    this.u2c.drop();
    const up = this.up;
    this.up = undefined;
    // Flags first: Bun reports the close from inside end() and terminate().
    if (!this.clientGone) {
      this.clientGone = true;
      if (abort) this.client.terminate();
      else this.client.end();
    }
    if (up !== undefined) {
      if (abort) up.terminate();
      else up.end();
    }
    this.env.closed?.(this);
  }

  /** For tests and diagnostics. */
  get state(): "connecting" | "open" | "closed" {
    return this.finished ? "closed" : this.connecting ? "connecting" : "open";
  }
}
