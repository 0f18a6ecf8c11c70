// A Deno connection (Deno.Conn, TCP, unix or TLS) as the engine's Duplex: a read loop with backpressure, a bounded write queue.
import { join } from "../../engine/bytes.ts";
import type { Duplex } from "../../engine/types.ts";
import { handshakeFailure } from "../handshake-failure.ts";

/** Bytes asked of each read. A fresh copy of what arrived is handed over, so the buffer is reused. */
const READ_SIZE = 32 * 1024;
/** write() takes nothing more while this much waits to be written; the engine then waits for drain. */
const HIGH_WATER = 64 * 1024;
/** Queued chunks up to this total leave in one write (a response head and the first body bytes). */
const GATHER_MAX = 64 * 1024;

/** What a socket reports. `end` unset: the peer's FIN ends this side too (after what is queued). */
export interface SocketEvents {
  data(data: Uint8Array): void;
  drain(): void;
  end?(): void;
  close(error?: string): void;
}

/**
 * Deno's writes are promises, Bun's are calls that return what the kernel took: here write() queues (no
 * copy: the engine never changes a buffer it gave away) and reports the whole chunk taken while under
 * HIGH_WATER, else nothing, and `drain` once the queue has gone. pause() stops issuing reads; a read
 * already in flight is held and delivered on resume(). `close` is reported once, whoever closed, and
 * from inside terminate() as Bun does.
 */
export class DenoSocket implements Duplex {
  private queue: Uint8Array[] = [];
  private queued = 0;
  private writing = false;
  private wantDrain = false;
  /** What happens once the queue has gone: nothing, close (end), or FIN and keep reading (shutdown). */
  private after: "" | "end" | "shutdown" = "";
  private writeShut = false;
  private readEnded = false;
  /** No more reads (end() was called: Bun closes both ways). */
  private readStopped = false;
  private paused = false;
  private reading = false;
  private held: Uint8Array | undefined;
  private buf: Uint8Array | undefined;
  closed = false;

  constructor(
    readonly conn: Deno.Conn,
    public events: SocketEvents,
  ) {}

  /** Start reading (after a TLS server handshake, when `handshake` is given). */
  start(handshake?: { done(): void; failed(why?: string): void }): void {
    if (!handshake) return void this.readLoop();
    (this.conn as Deno.TlsConn).handshake().then(
      () => {
        if (this.closed) return;
        handshake.done();
        void this.readLoop();
      },
      (err) => {
        if (this.closed) return;
        handshake.failed(handshakeFailure(err));
        this.destroy();
      },
    );
  }

  write(data: Uint8Array): number {
    if (this.closed || this.after !== "" || this.writeShut) return 0;
    if (this.queued >= HIGH_WATER) {
      this.wantDrain = true;
      return 0;
    }
    this.queue.push(data);
    this.queued += data.length;
    if (!this.writing) void this.pump();
    return data.length;
  }

  end(): void {
    if (this.closed || this.after === "end") return;
    this.after = "end";
    this.readStopped = true;
    this.held = undefined;
    if (!this.writing) void this.settle();
  }

  shutdown(): void {
    if (this.closed || this.after !== "" || this.writeShut) return;
    this.after = "shutdown";
    if (!this.writing) void this.settle();
  }

  terminate(): void {
    this.destroy();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused || this.closed) return;
    this.paused = false;
    // Never from inside the call: the engine resumes in the middle of its own bookkeeping (Bun does not call back either).
    queueMicrotask(() => void this.readLoop());
  }

  /** Close now and report it (once). */
  destroy(error?: string): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.queued = 0;
    this.held = undefined;
    try {
      this.conn.close();
    } catch {
      // already closed by Deno (a failed read or write)
    }
    this.events.close(error);
  }

  private async readLoop(): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    try {
      while (!this.closed && !this.paused && !this.readEnded && !this.readStopped) {
        const held = this.held;
        if (held) {
          this.held = undefined;
          this.events.data(held);
          continue;
        }
        const buf = (this.buf ??= new Uint8Array(READ_SIZE));
        const n = await this.conn.read(buf);
        if (this.closed || this.readStopped) return;
        if (n === null) return this.peerEnded();
        if (n === 0) continue;
        const data = buf.slice(0, n);
        if (this.paused) {
          this.held = data;
          return;
        }
        this.events.data(data);
      }
    } catch (err) {
      if (!this.closed) this.destroy(reason(err));
    } finally {
      this.reading = false;
    }
  }

  /** The peer sent FIN. */
  private peerEnded(): void {
    this.readEnded = true;
    this.buf = undefined;
    if (this.writeShut) return this.destroy(); // both ways done
    if (this.events.end) this.events.end();
    else this.end();
  }

  private async pump(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const q = this.queue;
        if (q.length > 1 && this.queued <= GATHER_MAX) q.splice(0, q.length, join(q, this.queued));
        const chunk = q[0]!;
        const n = await this.conn.write(chunk);
        if (this.closed) return;
        if (n < chunk.length) q[0] = chunk.subarray(n);
        else q.shift();
        this.queued -= n;
      }
    } catch (err) {
      this.destroy(reason(err));
      return;
    } finally {
      this.writing = false;
    }
    if (this.closed) return;
    if (this.after !== "") return this.settle();
    if (this.wantDrain) {
      this.wantDrain = false;
      this.events.drain();
    }
  }

  /** The queue has gone: carry out end() or shutdown(). */
  private async settle(): Promise<void> {
    if (this.closed || this.queue.length > 0) return;
    const after = this.after;
    this.after = "";
    if (after === "end") {
      // FIN (and a TLS close_notify) after what was written, then close.
      await this.conn.closeWrite().catch(() => {});
      this.destroy();
    } else if (after === "shutdown") {
      try {
        await this.conn.closeWrite();
      } catch (err) {
        return this.destroy(reason(err));
      }
      this.writeShut = true;
      if (this.readEnded) this.destroy();
    }
  }
}

/** A short reason for a failed read or write ("connection reset"), as Bun's dialer words them. */
export function reason(err: unknown): string {
  const e = err as { code?: string; name?: string; message?: string };
  switch (e?.code ?? e?.name) {
    case "ECONNREFUSED":
    case "ConnectionRefused":
      return "connection refused";
    case "ECONNRESET":
    case "ConnectionReset":
      return "connection reset";
    case "EPIPE":
    case "BrokenPipe":
      return "broken pipe";
    case "ENOENT":
    case "NotFound":
      return "cannot connect (socket missing or unreachable)";
    case "EMFILE":
    case "ENFILE":
      return "out of file descriptors";
    case "ETIMEDOUT":
    case "TimedOut":
      return "connect timed out";
    default:
      return e?.code ?? e?.message ?? String(err);
  }
}
