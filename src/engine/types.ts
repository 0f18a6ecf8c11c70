// The engine's edges: the small socket interface a runtime provides, and what the engine needs to know about a tenant.
import type { Stamp } from "./rewrite.ts";
import type { UpstreamPool } from "./upstream-pool.ts";

/**
 * One side of a connection as the engine sees it. The runtime adapts its sockets to this.
 * Buffers cross this boundary by ownership, without copies: a buffer the runtime delivers (onData,
 * onClientData) is never reused by the runtime, and one given to write() is never changed afterwards,
 * unless the runtime's write() copies what it takes (Env.writeCopies).
 */
export interface Duplex {
  /** Hand bytes to the transport; returns how many it took. Fewer than given: keep the rest, wait for drain. */
  write(data: Uint8Array): number;
  /** Send FIN once what was written has gone, then close. */
  end(): void;
  /** Close at once (RST when data is unsent). Named as Bun names it, so a Bun socket is a Duplex as it is. */
  terminate(): void;
  /**
   * Send FIN once what was written has gone, and keep reading (half-close, for TCP mode). A Bun socket's
   * shutdown() is this; its end() closes both ways at once, even with allowHalfOpen (see tcp.ts).
   */
  shutdown?(): void;
  pause(): void;
  resume(): void;
}

/** Where a tenant's upstream is: TCP host and port, or a unix socket path. */
export interface UpstreamAddress {
  host?: string;
  port?: number;
  unix?: string;
  /** https:// upstream: TLS with the host as server name, verified against the system's CAs. */
  tls?: boolean;
  /** Ingress: host and port are inside the network namespace open at this fd (connected through the C library). */
  nsFd?: number;
  /** An extra CA (PEM) the upstream's certificate may chain to, besides the default roots. */
  ca?: string;
  /** upstream_insecure: the certificate is not verified (logged at start). */
  insecure?: boolean;
  /** TCP mode: the upstream's FIN arrives as onEnd and the connection stays writable. */
  halfOpen?: boolean;
}

/** Events of an upstream connection, delivered by the runtime's dialer. */
export interface UpstreamEvents {
  onOpen(sock: Duplex): void;
  onData(data: Uint8Array): void;
  onDrain(): void;
  /** The upstream sent FIN (only when dialed with halfOpen); without this handler the runtime ends its side too. */
  onEnd?(): void;
  /** Set by the dialer for upstream_insecure connections (the handshake's verdict is not checked). */
  insecure?: boolean;
  /** The connection closed, or could not be made (`error`: a short reason such as "connection refused"). */
  onClose(error?: string): void;
}

/** Makes upstream connections (in the worker's own namespace: the host's network). */
export type Dial = (to: UpstreamAddress, events: UpstreamEvents) => void;

// ---------------------------------------------------------------- listeners: what a runtime's accepted sockets report to
// The runtime adapters (src/runtime/bun/, src/runtime/deno/) implement this side; the worker and the engine's
// connections are the sinks. Both adapters pass the shared cases in src/runtime/net.case.ts.

/** What a listener's accepted sockets report to; the worker decides whether to serve each one. */
export interface ClientSink {
  onClientData(data: Uint8Array): void;
  onClientDrain(): void;
  /** The client sent FIN (half-close): its requests so far are still answered. */
  onClientEnd(): void;
  onClientClose(): void;
  /**
   * TLS listeners: the handshake failed (the close follows); `why` in words when the TLS library said
   * (plain HTTP, an alert). Counted, and a debug line at most every 10 s per tenant.
   */
  onHandshakeFailed?(why?: string): void;
  /** TLS listeners: the handshake is done (the TLS version is known from now on). */
  onHandshake?(): void;
}

/** Who is on each end of an accepted connection, as seen inside the tenant's namespace. */
export interface Peer {
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  /** Accepted by an https:// listener (the handshake follows). */
  tls: boolean;
}

export interface ListenerHooks {
  /** A connection was accepted: return its sink, or undefined after closing it (refused). */
  accept(sock: Duplex, peer: Peer): ClientSink | undefined;
}

/** A certificate and key (PEM text) for an https:// listener. */
export interface ListenTls {
  cert: string;
  key: string;
}

/** One request, for the access log. */
export interface Exchange {
  /** Present for the ingress direction (host client to a tenant's service); absent for egress. */
  direction?: "ingress";
  tenant: string;
  /** Ingress: the Host the client asked for, routed or not ("" when it sent none). */
  host?: string;
  method: string;
  path: string;
  status: number;
  /** Response body bytes when declared (Content-Length), else undefined. */
  bytes: number | undefined;
  /** Milliseconds from the request head to the response head. */
  ms: number;
}

/** Everything the engine needs about one tenant, built once per tenant spec. */
export interface Route {
  tenant: string;
  stamp: Stamp;
  upstream: UpstreamAddress;
  /** As the operator wrote it, for error messages. */
  upstreamText: string;
  upstreamTimeoutMs: number;
  /** This tenant's counters in this worker (Stat offsets; see stats.ts), read by the main thread at scrape. */
  stats: Float64Array;
  /** Idle upstream connections of this tenant in this worker, for its next client connections. */
  pool?: UpstreamPool;
  /** "ingress": a host-side client reaching the tenant's own service (the access log says so). */
  direction?: "ingress";
}

export interface Limits {
  requestTimeoutMs: number;
  idleTimeoutMs: number;
  connectTimeoutMs: number;
  bodyTimeoutMs: number;
  /** An upgraded connection (WebSocket) may be idle this long. */
  tunnelTimeoutMs: number;
  maxHeaderBytes: number;
  maxHeaders: number;
  maxTargetBytes: number;
}

/** What a worker gives every connection: settings, the dialer, the access log, a clock. */
export interface Env {
  limits: Limits;
  dial: Dial;
  access?: (e: Exchange) => void;
  /**
   * Milliseconds for timeouts. May be coarse (the worker's sweep refreshes it every 250 ms, sparing a
   * clock read per event): timeouts are only checked that often anyway.
   */
  now: () => number;
  /** A connection finished (for counters and the sweep registry). */
  closed?: (conn: unknown) => void;
  /** A TLS handshake failed on a tenant's https:// listener (already counted): for a rate-limited debug line. */
  tlsFailed?: (tenant: string, client: string, why?: string) => void;
  /** The worker's own figures (stats.ts W_*): the request-duration histogram. */
  workerStats?: Float64Array;
  /**
   * write() is done with a buffer when it returns (what it took went to the kernel or was copied): a buffer
   * written whole may then be written into again. Bun's sockets do this; Deno's queue the buffer itself.
   */
  writeCopies?: boolean;
}
