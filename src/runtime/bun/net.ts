// Bun's side of the data path: a tenant listener (Bun.listen, made inside the window) and the upstream dialer (Bun.connect, made at home).
import type { Socket, SocketHandler, TCPSocketListener } from "bun";
import { rootCertificates } from "node:tls";
import type { ClientSink, Dial, Duplex, ListenerHooks, ListenTls, Peer, UpstreamEvents } from "../../engine/types.ts";
import { handshakeFailure } from "../handshake-failure.ts";
import { countRead } from "./read-garbage.ts";

type ClientSocket = Socket<ClientSink | ListenerHooks>;

// One handler object for every listener of the worker: Bun keeps per-socket state in socket.data, so a
// listener costs no closures (1.9 kB per listener measured, against 16.4 kB for Bun.serve).
const clientHandlers: SocketHandler<ClientSink | ListenerHooks> = {
  open(s: ClientSocket) {
    s.setNoDelay(true);
    const hooks = s.data as ListenerHooks;
    // A refused socket may report its close while accept() runs: it must find a sink already.
    s.data = NOOP;
    const peer: Peer = { remoteAddress: s.remoteAddress, remotePort: s.remotePort, localAddress: s.localAddress, localPort: s.localPort, tls: TLS_SOCKETS.has(hooks) };
    const sink = hooks.accept(s as unknown as Duplex, peer);
    if (sink) s.data = sink;
  },
  handshake(s: ClientSocket, success: boolean, error: Error | null) {
    // A server without client certificates reports success with an authorization error ("unable to get
    // issuer certificate"): only `success` matters here. On failure the error names BoringSSL's reason.
    if (success) (s.data as ClientSink).onHandshake?.();
    else (s.data as ClientSink).onHandshakeFailed?.(handshakeFailure(error));
  },
  data(s: ClientSocket, data: Uint8Array) {
    (s.data as ClientSink).onClientData(data);
    countRead(data.length);
  },
  drain(s: ClientSocket) {
    (s.data as ClientSink).onClientDrain();
  },
  end(s: ClientSocket) {
    (s.data as ClientSink).onClientEnd();
  },
  close(s: ClientSocket) {
    (s.data as ClientSink).onClientClose();
  },
  error(s: ClientSocket) {
    (s.data as ClientSink).onClientClose();
  },
  // The engine needs bytes, not Buffer's extra prototype: a plain Uint8Array is cheaper to make per read.
  binaryType: "uint8array",
};

/** Hooks of TLS listeners (accepted sockets of those are TLS). */
const TLS_SOCKETS = new WeakSet<object>();

/** ALPN offers http/1.1 only, in the wire format Bun takes (length-prefixed). */
const ALPN_HTTP11 = "\x08http/1.1";

/** The TLS version a socket negotiated ("TLSv1.3"), for PROXY v2's SSL TLV; "" when not TLS or unknown. */
export function tlsVersionOf(sock: Duplex): string {
  const v = (sock as unknown as { getTLSVersion?: () => string | null }).getTLSVersion?.();
  return typeof v === "string" ? v : "";
}

const NOOP: ClientSink = { onClientData() {}, onClientDrain() {}, onClientEnd() {}, onClientClose() {} };

/**
 * Listen on host:port with SO_REUSEPORT. Called inside the window: it creates the socket synchronously
 * on this thread and starts nothing else.
 */
export function listenTcp(host: string, port: number, hooks: ListenerHooks, tls?: ListenTls): TCPSocketListener<ClientSink | ListenerHooks> {
  if (tls) TLS_SOCKETS.add(hooks);
  const tlsOptions = tls ? { tls: { cert: tls.cert, key: tls.key, ALPNProtocols: ALPN_HTTP11 } } : {};
  // allowHalfOpen: a client's FIN after its request must not cut the answer (the engine closes after it).
  return Bun.listen<ClientSink | ListenerHooks>({ hostname: host, port, reusePort: true, allowHalfOpen: true, data: hooks, socket: clientHandlers, ...tlsOptions } as unknown as Parameters<
    typeof Bun.listen<ClientSink | ListenerHooks>
  >[0]) as unknown as TCPSocketListener<ClientSink | ListenerHooks>;
}

type UpSocket = Socket<UpstreamEvents>;

/** Bun reports connect failures with codes; an operator reads words. */
function describe(err: unknown): string {
  const e = err as { code?: string; message?: string };
  switch (e?.code) {
    case "ECONNREFUSED":
    case "ConnectionRefused":
      return "connection refused";
    case "ENOENT":
    case "FailedToOpenSocket":
      return "cannot connect (socket missing or unreachable)";
    case "EMFILE":
    case "ENFILE":
      return "out of file descriptors";
    case "ETIMEDOUT":
      return "connect timed out";
    default:
      return e?.code ?? e?.message ?? String(err);
  }
}

const upstreamHandlers: SocketHandler<UpstreamEvents> = {
  open(s: UpSocket) {
    s.setNoDelay(true);
    s.data.onOpen(s as unknown as Duplex);
  },
  data(s: UpSocket, data: Uint8Array) {
    s.data.onData(data);
    countRead(data.length);
  },
  drain(s: UpSocket) {
    s.data.onDrain();
  },
  // Only for connections dialed with halfOpen (TCP mode): the upstream sent FIN and may still read.
  end(s: UpSocket) {
    if (s.data.onEnd) s.data.onEnd();
    else s.end();
  },
  close(s: UpSocket) {
    s.data.onClose();
  },
  connectError(s: UpSocket, err: Error) {
    s.data.onClose(describe(err));
  },
  // https:// upstreams: a certificate that does not verify ends the connection with the reason.
  handshake(s: UpSocket, success: boolean, authorizationError: Error | null) {
    if (success && (!authorizationError || s.data.insecure)) return;
    const why = authorizationError ? ((authorizationError as { code?: string }).code ?? authorizationError.message) : "handshake failed";
    s.data.onClose(`TLS: ${why}`);
    s.terminate();
  },
  error(s: UpSocket, err: Error) {
    s.data.onClose(describe(err));
  },
  binaryType: "uint8array",
};

/** Connect to an upstream from the worker's own namespace; every outcome arrives on `events`. */
export const dial: Dial = (to, events) => {
  if (to.insecure) events.insecure = true;
  const half = to.halfOpen ? { allowHalfOpen: true } : {};
  const opts = to.unix
    ? { unix: to.unix, data: events, socket: upstreamHandlers, ...half }
    : { hostname: to.host!, port: to.port!, data: events, socket: upstreamHandlers, ...half, ...(to.tls ? { tls: upstreamTls(to) } : {}) };
  Bun.connect<UpstreamEvents>(opts as Parameters<typeof Bun.connect<UpstreamEvents>>[0]).catch((err) => events.onClose(describe(err)));
};

/**
 * Adopt a socket the C library connected inside a tenant's namespace (ingress): the connect may still be
 * in progress; every outcome arrives on `events` as from dial(). Called outside any window.
 */
export function dialFd(fd: number, events: UpstreamEvents): void {
  Bun.connect<UpstreamEvents>({ fd, data: events, socket: upstreamHandlers } as unknown as Parameters<typeof Bun.connect<UpstreamEvents>>[0]).catch((err) =>
    events.onClose(describe(err)),
  );
}

/** TLS options of an https:// upstream: SNI is its host; an extra CA adds to the default roots, never replaces them. */
const tlsByUpstream = new WeakMap<object, object>();
function upstreamTls(to: Parameters<Dial>[0]): object {
  let t = tlsByUpstream.get(to);
  if (!t) {
    t = { serverName: to.host, ...(to.ca ? { ca: [...rootCertificates, to.ca] } : {}), ...(to.insecure ? { rejectUnauthorized: false } : {}) };
    tlsByUpstream.set(to, t);
  }
  return t;
}
