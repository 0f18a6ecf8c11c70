// The few Deno APIs src/runtime/deno/ uses, declared by hand: Deno's own lib (deno types) redeclares the web
// globals Bun's types already declare, so it cannot be loaded beside them. Checked against Deno 2.9.6.

declare namespace Deno {
  interface NetAddr {
    transport: "tcp" | "udp";
    hostname: string;
    port: number;
  }
  interface UnixAddr {
    transport: "unix" | "unixpacket";
    path: string;
  }
  type Addr = NetAddr | UnixAddr;

  interface Conn {
    read(p: Uint8Array): Promise<number | null>;
    write(p: Uint8Array): Promise<number>;
    close(): void;
    closeWrite(): Promise<void>;
    readonly localAddr: Addr;
    readonly remoteAddr: Addr;
  }
  interface TcpConn extends Conn {
    setNoDelay(noDelay?: boolean): void;
  }
  interface TlsConn extends Conn {
    handshake(): Promise<{ alpnProtocol: string | null }>;
  }
  interface Listener<T extends Conn = Conn> {
    accept(): Promise<T>;
    close(): void;
    readonly addr: Addr;
  }

  interface TcpListenOptions {
    hostname?: string;
    port?: number;
    transport?: "tcp";
    /** Needs --unstable-net. */
    reusePort?: boolean;
  }
  function listen(options: TcpListenOptions): Listener<TcpConn>;
  function listenTls(options: TcpListenOptions & { cert: string; key: string; alpnProtocols?: string[] }): Listener<TlsConn>;
  function connect(options: { hostname: string; port: number; transport?: "tcp" }): Promise<TcpConn>;
  function connect(options: { transport: "unix"; path: string }): Promise<Conn>;
  function connectTls(options: { hostname: string; port: number; caCerts?: string[]; alpnProtocols?: string[] }): Promise<TlsConn>;

  interface HttpServer {
    finished: Promise<void>;
    shutdown(): Promise<void>;
  }
  type ServeHandler = (request: Request) => Response | Promise<Response>;
  interface ServeBase {
    handler: ServeHandler;
    onListen?: (addr: Addr) => void;
    onError?: (error: unknown) => Response | Promise<Response>;
    signal?: AbortSignal;
  }
  function serve(options: ServeBase & ({ path: string } | { hostname: string; port: number })): HttpServer;

  interface HttpClient {
    close(): void;
  }
  function createHttpClient(options: { proxy: { transport: "unix"; path: string } }): HttpClient;

  type NativeType = "i32" | "i64" | "buffer";
  interface ForeignFunction {
    parameters: readonly NativeType[];
    result: NativeType;
  }
  type ForeignLibraryInterface = Record<string, ForeignFunction>;
  function dlopen(path: string, symbols: ForeignLibraryInterface): { symbols: Record<string, (...args: unknown[]) => unknown>; close(): void };

  /** deno test: register a case; `ignore` skips it (reported as ignored). */
  function test(t: { name: string; fn: () => void | Promise<void>; ignore?: boolean }): void;

  namespace errors {
    class BadResource extends Error {}
    class Interrupted extends Error {}
  }
}

interface RequestInit {
  /** Deno: the HttpClient (from Deno.createHttpClient) to send this request with. */
  client?: Deno.HttpClient;
}
