// The small interface nsproxy needs from a JavaScript runtime; bun/runtime.ts and deno/runtime.ts implement it, index.ts picks one.
import type { Dial, Duplex, ListenerHooks, ListenTls, UpstreamEvents } from "../engine/types.ts";
import type { NetnsSymbols } from "./ffi-symbols.ts";

// The listener contract is the engine's (engine/types.ts); named here too because Runtime.listenTcp takes it.
export type { ClientSink, ListenerHooks, ListenTls, Peer } from "../engine/types.ts";

/** A tenant listener: stop(false) stops accepting; stop(true) also closes the connections it accepted. */
export interface Listener {
  stop(closeActive?: boolean): void;
}

/** nsproxy's own HTTP server (admin API on a unix socket, metrics on TCP in the host namespace). */
export interface HttpServer {
  /** Stop listening (and unlink the unix socket it bound); with `force`, close open connections too. */
  stop(force?: boolean): Promise<void>;
}

/** reusePort (TCP): SO_REUSEPORT, so that an upgrade's successor binds beside this listener. */
export type ServeAt = { unix: string } | { hostname: string; port: number; reusePort?: boolean };

export interface Runtime {
  readonly name: "bun" | "deno";

  /** Listen on host:port with SO_REUSEPORT, synchronously on this thread and starting nothing else (the window). */
  listenTcp(host: string, port: number, hooks: ListenerHooks, tls?: ListenTls): Listener;
  /** Connect to an upstream from this thread's namespace; every outcome arrives on `events`. */
  dial: Dial;
  /** Adopt a socket connected (or connecting) elsewhere, by fd; outcomes as from dial(). */
  dialFd(fd: number, events: UpstreamEvents): void;
  /** The TLS version a client connection negotiated ("TLSv1.3"); "" when not TLS or not known. */
  tlsVersionOf(sock: Duplex): string;

  /** libnetns.so's functions; `path` overrides where the library is (else: embedded, or dist/ from source). */
  loadNetns(path?: string): NetnsSymbols;
  /** The library loadNetns opens by default (a path inside the binary's embedded files, or dist/libnetns.so): what --lib-dir copies. */
  readonly netnsLibFile: string;

  /** Serve `fetch` (a Hono app's) at a unix socket path or a TCP address; throws when it cannot bind. */
  serveHttp(at: ServeAt, fetch: (req: Request) => Response | Promise<Response>): HttpServer;
  /**
   * An HTTP request over a unix socket. Connection failures reject with `code` set as Node sets it
   * (ENOENT, ECONNREFUSED, EACCES); a timeout from `init.signal` rejects with name "TimeoutError".
   */
  fetchUnix(socketPath: string, url: string, init?: RequestInit): Promise<Response>;

  /**
   * A module worker (one OS thread). Both runtimes' workers behave alike here: "close" is dispatched once the
   * thread has ended or was terminated, and an uncaught error in it is an "error" event, never the parent's crash.
   */
  startWorker(url: string | URL): Worker;

  /**
   * Environment the process must start with so that the runtime starts no thread lazily from a worker (one
   * started inside the window would stay in the tenant's namespace). Empty: nothing is needed.
   */
  readonly windowSafeEnv: Readonly<Record<string, string>>;

  /** A socket's write() is done with the buffer when it returns (see Env.writeCopies). */
  readonly writeCopies: boolean;
}
