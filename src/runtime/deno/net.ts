// Deno's side of the data path: a tenant listener (Deno.listen / listenTls, made inside the window) and the upstream dialer (Deno.connect, made at home).
import { readFileSync } from "node:fs";
import type { ClientSink, Dial, Duplex, ListenerHooks, ListenTls, Peer, UpstreamAddress, UpstreamEvents } from "../../engine/types.ts";
import { DenoSocket, reason, type SocketEvents } from "./socket.ts";
import { NodeSocket } from "./node-socket.ts";
import type { Listener } from "../types.ts";

/** --unstable-net is on: its APIs exist (listenDatagram is one). */
const UNSTABLE_NET = typeof (Deno as unknown as { listenDatagram?: unknown }).listenDatagram === "function";

const NOOP: SocketEvents = { data() {}, drain() {}, end() {}, close() {} };

/** A client connection's events go to the sink the worker chose for it. */
function clientEvents(sink: ClientSink): SocketEvents {
  return {
    data: (d) => sink.onClientData(d),
    drain: () => sink.onClientDrain(),
    // Half-open, as Bun's listeners are (allowHalfOpen): the client's FIN does not cut the answer.
    end: () => sink.onClientEnd(),
    close: () => sink.onClientClose(),
  };
}

/**
 * Listen on host:port with SO_REUSEPORT (needs --unstable-net). Called inside the window: Deno.listen and
 * Deno.listenTls create and register the socket synchronously on this thread; the accept loop starts in a
 * microtask, after the caller is home again.
 */
export function listenTcp(host: string, port: number, hooks: ListenerHooks, tls?: ListenTls): Listener {
  // Without the flag Deno ignores reusePort: a second worker, or a tenant's replacement, could not bind.
  if (!UNSTABLE_NET) throw new Error("Deno needs --unstable-net for SO_REUSEPORT (deno run -A --unstable-net src/cli.ts …)");
  const options = { hostname: host, port, transport: "tcp" as const, reusePort: true };
  const listener = tls ? Deno.listenTls({ ...options, cert: tls.cert, key: tls.key, alpnProtocols: ["http/1.1"] }) : Deno.listen(options);
  const accepted = new Set<DenoSocket>();
  let stopped = false;
  queueMicrotask(() => void acceptLoop(listener, hooks, Boolean(tls), accepted, () => stopped));
  return {
    stop(closeActive = false) {
      if (!stopped) {
        stopped = true;
        listener.close();
      }
      if (closeActive) for (const s of [...accepted]) s.terminate();
    },
  };
}

async function acceptLoop(listener: Deno.Listener, hooks: ListenerHooks, tls: boolean, accepted: Set<DenoSocket>, stopped: () => boolean): Promise<void> {
  for (;;) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (err) {
      if (stopped() || err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted) return;
      // Out of descriptors and the like: try again shortly rather than spin.
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    // After stop() a connection can still arrive here: Deno accepted it before, its promise settled after. It
    // goes to the hooks all the same: whether a retiring tenant still answers it is theirs to say (it serves
    // and drains it, see tenant-group.ts accept; Bun's listener has no such gap).
    try {
      accept(conn, hooks, tls, accepted);
    } catch (err) {
      // The loop must go on accepting; the error surfaces as the worker's own, as it would from Bun's open handler.
      conn.close();
      queueMicrotask(() => {
        throw err;
      });
    }
  }
}

function accept(conn: Deno.Conn, hooks: ListenerHooks, tls: boolean, accepted: Set<DenoSocket>): void {
  if (!tls) (conn as Deno.TcpConn).setNoDelay(true);
  const remote = conn.remoteAddr as Deno.NetAddr;
  const local = conn.localAddr as Deno.NetAddr;
  const peer: Peer = { remoteAddress: remote.hostname, remotePort: remote.port, localAddress: local.hostname, localPort: local.port, tls };
  // A refused connection may be written to and ended inside accept(): it needs events already.
  const sock = new DenoSocket(conn, NOOP);
  const sink = hooks.accept(sock, peer);
  if (!sink || sock.closed) return;
  const events = clientEvents(sink);
  sock.events = {
    ...events,
    close: () => {
      accepted.delete(sock);
      events.close();
    },
  };
  accepted.add(sock);
  sock.start(tls ? { done: () => sink.onHandshake?.(), failed: (why) => sink.onHandshakeFailed?.(why) } : undefined);
}

/** Deno exposes no negotiated TLS version: PROXY v2 headers from https:// listeners carry no SSL TLV under Deno. */
export function tlsVersionOf(_sock: Duplex): string {
  return "";
}

function upstreamEvents(e: UpstreamEvents): SocketEvents {
  return {
    data: (d) => e.onData(d),
    drain: () => e.onDrain(),
    end: e.onEnd ? () => e.onEnd!() : undefined,
    close: (error) => e.onClose(error),
  };
}

/** Connect to an upstream from the worker's own namespace; every outcome arrives on `events`. */
export const dial: Dial = (to, events) => {
  if (to.insecure) events.insecure = true;
  if (to.tls && to.insecure) return void dialInsecure(to, events);
  connect(to).then(
    (conn) => {
      const sock = new DenoSocket(conn, upstreamEvents(events));
      events.onOpen(sock);
      if (!sock.closed) sock.start();
    },
    (err) => events.onClose(err instanceof TlsRefused ? err.message : reason(err)),
  );
};

class TlsRefused extends Error {}

async function connect(to: UpstreamAddress): Promise<Deno.Conn> {
  if (to.unix) return Deno.connect({ transport: "unix", path: to.unix });
  if (!to.tls) {
    const conn = await Deno.connect({ hostname: to.host!, port: to.port! });
    conn.setNoDelay(true);
    return conn;
  }
  // An extra CA adds to the default roots (Deno's caCerts), never replaces them. The handshake is done before
  // the connection is handed over, so a certificate that does not verify is a connect failure with its reason.
  const caCerts = [...extraCa(), ...(to.ca ? [to.ca] : [])];
  const conn = await Deno.connectTls({ hostname: to.host!, port: to.port!, ...(caCerts.length ? { caCerts } : {}), alpnProtocols: ["http/1.1"] });
  try {
    await conn.handshake();
  } catch (err) {
    conn.close();
    throw new TlsRefused(`TLS: ${tlsReason(err)}`);
  }
  return conn;
}

/**
 * NODE_EXTRA_CA_CERTS, which Bun and Node honour and Deno.connectTls does not: read once, added to the
 * default roots of every https:// upstream. A file that cannot be read adds nothing, as in Node.
 */
let extra: string[] | undefined;
function extraCa(): string[] {
  if (!extra) {
    const file = process.env.NODE_EXTRA_CA_CERTS;
    extra = [];
    if (file) {
      try {
        extra = [readFileSync(file, "utf8")];
      } catch {
        // as Node: a warning would go to stderr once; the verification failure names the certificate anyway
      }
    }
  }
  return extra;
}

/** rustls says "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))"; the operator reads the last name. */
function tlsReason(err: unknown): string {
  const message = (err as Error)?.message ?? String(err);
  const m = /^invalid peer certificate: (?:\w+\()*(\w+)\)*$/.exec(message);
  return m ? `invalid peer certificate: ${m[1]}` : message;
}

/** upstream_insecure: Deno.connectTls always verifies the chain, node:tls (under Deno) can be told not to. */
async function dialInsecure(to: UpstreamAddress, events: UpstreamEvents): Promise<void> {
  const [tls, { isIP }] = await Promise.all([import("node:tls"), import("node:net")]);
  let s: import("node:tls").TLSSocket;
  try {
    // SNI names a host, never an address (node:tls refuses one).
    s = tls.connect({ host: to.host!, port: to.port!, ...(isIP(to.host!) ? {} : { servername: to.host }), rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] });
  } catch (err) {
    return events.onClose(reason(err));
  }
  let open = false;
  s.once("secureConnect", () => {
    open = true;
    s.setNoDelay(true);
    events.onOpen(new NodeSocket(s, events));
  });
  s.once("error", (err) => {
    if (!open) events.onClose(reason(err));
  });
}

/**
 * Adopt a socket the C library connected inside a tenant's namespace (ingress), through node:net: Deno's
 * own API cannot take an fd, node:net's Socket({ fd }) can (checked on Deno 2.9.6). Outcomes as from dial().
 */
export function dialFd(fd: number, events: UpstreamEvents): void {
  import("node:net").then(
    ({ Socket }) => {
      const s = new Socket({ fd, readable: true, writable: true, allowHalfOpen: Boolean(events.onEnd) });
      s.setNoDelay(true);
      events.onOpen(new NodeSocket(s, events));
    },
    (err) => events.onClose(reason(err)),
  );
}
