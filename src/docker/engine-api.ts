// The few Docker Engine API calls the container provider makes, as HTTP/1.1 over the daemon's unix socket (node:net:
// the same code on Bun and Deno; Deno's fetch over a unix socket buffers the whole body, and the events never end).
import { connect, type Socket } from "node:net";

/** A whole answer larger than this is refused: a list of 10,000 containers is a few MB, one inspect a few kB. */
const MAX_BODY_BYTES = 64 << 20;
const MAX_HEAD_BYTES = 64 << 10;
/** One event line; Docker's are well under 4 kB. */
const MAX_LINE_BYTES = 1 << 20;

export class EngineApiError extends Error {
  constructor(
    message: string,
    /** The HTTP status, when the daemon answered. */
    readonly status?: number,
    /** The socket error's code (ENOENT, ECONNREFUSED…), when it did not. */
    readonly code?: string,
  ) {
    super(message);
  }
}

interface Head {
  status: number;
  chunked: boolean;
  length?: number;
}

function parseHead(text: string): Head {
  const lines = text.split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
  if (!m) throw new EngineApiError(`not an HTTP answer: ${JSON.stringify((lines[0] ?? "").slice(0, 80))}`);
  const head: Head = { status: Number(m[1]), chunked: false };
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "transfer-encoding" && /chunked/i.test(value)) head.chunked = true;
    else if (name === "content-length" && /^\d+$/.test(value)) head.length = Number(value);
  }
  return head;
}

/** Chunked transfer coding, undone as bytes arrive; `onData` gets each chunk's bytes, `onEnd` the last-chunk. */
class Dechunker {
  private buf: Buffer = Buffer.alloc(0);
  private left = -1;
  done = false;

  constructor(
    private readonly onData: (b: Buffer) => void,
    private readonly onEnd: () => void,
  ) {}

  feed(data: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : data;
    while (!this.done) {
      if (this.left < 0) {
        const eol = this.buf.indexOf("\r\n");
        if (eol < 0) {
          if (this.buf.length > 1024) throw new EngineApiError("chunk size line too long");
          return;
        }
        const size = Number.parseInt(this.buf.subarray(0, eol).toString("latin1").split(";")[0]!.trim(), 16);
        if (!Number.isFinite(size) || size < 0) throw new EngineApiError("bad chunk size");
        this.buf = this.buf.subarray(eol + 2);
        if (size === 0) {
          this.done = true;
          this.onEnd();
          return;
        }
        this.left = size;
      }
      if (this.left > 0) {
        if (this.buf.length === 0) return;
        const take = Math.min(this.left, this.buf.length);
        this.onData(this.buf.subarray(0, take));
        this.buf = this.buf.subarray(take);
        this.left -= take;
      }
      if (this.left === 0) {
        if (this.buf.length < 2) return;
        this.buf = this.buf.subarray(2);
        this.left = -1;
      }
    }
  }
}

export interface Exchange {
  /** Resolves with the status once the head arrived. */
  head: Promise<number>;
  /** Resolves when the body ended (or the connection closed); rejects on a socket or framing error. */
  end: Promise<void>;
  close(): void;
}

/** One request on its own connection; the body's bytes go to `onData` as they arrive. */
export function exchange(socketPath: string, method: string, path: string, onData: (b: Buffer) => void): Exchange {
  const sock: Socket = connect({ path: socketPath });
  let headBuf: Buffer = Buffer.alloc(0);
  let head: Head | undefined;
  let received = 0;
  let dechunker: Dechunker | undefined;
  let settleHead!: { ok: (s: number) => void; fail: (e: Error) => void };
  let settleEnd!: { ok: () => void; fail: (e: Error) => void };
  const headP = new Promise<number>((ok, fail) => (settleHead = { ok, fail }));
  const endP = new Promise<void>((ok, fail) => (settleEnd = { ok, fail }));
  // Whoever awaits only one of the two must not see the other reject unhandled.
  headP.catch(() => {});
  endP.catch(() => {});
  const fail = (e: Error) => {
    settleHead.fail(e);
    settleEnd.fail(e);
    sock.destroy();
  };
  const finish = () => {
    settleEnd.ok();
    sock.destroy();
  };
  const body = (b: Buffer) => {
    if (!dechunker) {
      received += b.length;
      if (head!.length !== undefined && received >= head!.length) {
        onData(b.subarray(0, b.length - (received - head!.length)));
        return finish();
      }
      return onData(b);
    }
    dechunker.feed(b);
  };
  sock.on("connect", () => sock.write(`${method} ${path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: nsproxy\r\nConnection: close\r\n\r\n`));
  sock.on("data", (data: Buffer) => {
    try {
      if (head) return body(data);
      headBuf = Buffer.concat([headBuf, data]);
      const end = headBuf.indexOf("\r\n\r\n");
      if (end < 0) {
        if (headBuf.length > MAX_HEAD_BYTES) throw new EngineApiError("answer head too large");
        return;
      }
      head = parseHead(headBuf.subarray(0, end).toString("latin1"));
      settleHead.ok(head.status);
      if (head.chunked) dechunker = new Dechunker(onData, finish);
      const rest = headBuf.subarray(end + 4);
      if (!head.chunked && head.length === 0) return finish();
      if (rest.length) body(rest);
    } catch (e) {
      fail(e as Error);
    }
  });
  sock.on("error", (err: NodeJS.ErrnoException) => fail(new EngineApiError(`${socketPath}: ${err.message}`, undefined, err.code)));
  sock.on("close", () => {
    if (!head) fail(new EngineApiError(`${socketPath}: the connection closed before an answer`));
    else if (dechunker && !dechunker.done) fail(new EngineApiError(`${socketPath}: the connection closed mid-answer`));
    else settleEnd.ok();
  });
  return { head: headP, end: endP, close: () => sock.destroy() };
}

/** GET `path` and parse the JSON answer; a status other than 200 rejects with it. */
export async function getJson<T>(socketPath: string, path: string, timeoutMs = 10_000): Promise<T> {
  const parts: Buffer[] = [];
  let size = 0;
  let x: Exchange | undefined;
  x = exchange(socketPath, "GET", path, (b) => {
    size += b.length;
    if (size > MAX_BODY_BYTES) x?.close();
    else parts.push(Buffer.from(b));
  });
  const timer = setTimeout(() => x?.close(), timeoutMs);
  try {
    const status = await x.head;
    await x.end;
    if (size > MAX_BODY_BYTES) throw new EngineApiError(`GET ${path}: the answer is larger than ${MAX_BODY_BYTES} bytes`);
    const text = Buffer.concat(parts).toString("utf8");
    if (status !== 200) throw new EngineApiError(`GET ${path}: ${status} ${messageOf(text)}`, status);
    return JSON.parse(text) as T;
  } finally {
    clearTimeout(timer);
    x.close();
  }
}

function messageOf(text: string): string {
  try {
    return String((JSON.parse(text) as { message?: unknown }).message ?? text).slice(0, 200);
  } catch {
    return text.slice(0, 200);
  }
}

/** GET a stream of JSON lines (the events): each parsed line goes to `onEvent` until the stream ends or is closed. */
export function streamJson(socketPath: string, path: string, onEvent: (e: unknown) => void): Exchange {
  let pending = "";
  const x = exchange(socketPath, "GET", path, (b) => {
    pending += b.toString("utf8");
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (line === "") continue;
      try {
        onEvent(JSON.parse(line));
      } catch {
        // A line that is not JSON tells us nothing; the next list-and-inspect pass corrects any miss.
      }
    }
    if (pending.length > MAX_LINE_BYTES) x.close();
  });
  return x;
}
