// One direction of a connection: bytes from a source socket to a sink socket, queued while the sink is full, the source paused while any reason holds.
import { join } from "./bytes.ts";
import type { Duplex } from "./types.ts";

// Why reading from a source is paused (bits; it is read again when none is left):
/** The sink is full (or not open yet): what is queued must go first. */
export const PAUSE_BACKPRESSURE = 1;
/** HTTP: pipelined requests wait their turn; one head's worth is kept, then the client is not read. */
export const PAUSE_PIPELINE = 2;

/** Queued or held chunks up to this total leave in one write (a response head and its body; a PROXY header and the first client bytes). */
const GATHER_MAX = 64 * 1024;

export const enum Flow {
  /** Bytes go from source to sink. */
  Open,
  /** The source sent FIN (or is gone): what is queued still goes, then FIN to the sink. */
  Ending,
  /** FIN passed on to the sink. */
  Done,
  /** The sink is gone: nothing more can be delivered. */
  Dead,
}

export class Pipe {
  flow = Flow.Open;
  /** What the sink did not take yet, in order; `queued` bytes in all. */
  queue: Uint8Array[] = [];
  queued = 0;
  /** Writes held while an event is handled (hold), written gathered when it ends (release). */
  held: Uint8Array[] = [];
  /** PAUSE_* bits: why the source is not read. */
  paused = 0;
  /** Bytes the sinks took, in all: whether anything reached the sink since some point. */
  sent = 0;

  /** `early`: bytes queued before the sink exists that do not yet pause the source. */
  constructor(
    public source: Duplex | undefined,
    public sink: Duplex | undefined,
    private readonly early = 0,
  ) {}

  /** Send or queue `data`; false when it was dropped (the sink is gone). */
  push(data: Uint8Array): boolean {
    if (this.flow !== Flow.Open) return false;
    if (this.sink !== undefined && this.queue.length === 0) {
      const n = this.sink.write(data);
      if (n > 0) this.sent += n;
      if (n >= data.length) return true;
      data = data.subarray(Math.max(0, n)); // -1: closed under us; its close event follows
    }
    // No copy: a buffer handed to the engine is never reused by the runtime nor changed by the engine.
    this.queue.push(data);
    this.queued += data.length;
    if (this.sink !== undefined || this.queued > this.early) this.pause(PAUSE_BACKPRESSURE);
    return true;
  }

  /** Put bytes before everything queued (before the sink is set: a PROXY header). */
  unshift(data: Uint8Array): void {
    this.queue.unshift(data);
    this.queued += data.length;
  }

  /**
   * Keep `data` for release(); only while nothing is queued, so the order holds. A piece that continues
   * the last one in the same buffer (a response head forwarded as received, then its body) extends it:
   * one write of the bytes as they came, no join.
   */
  hold(data: Uint8Array): void {
    const h = this.held;
    const last = h.length > 0 ? h[h.length - 1]! : undefined;
    if (last !== undefined && last.buffer === data.buffer && last.byteOffset + last.length === data.byteOffset) {
      h[h.length - 1] = new Uint8Array(last.buffer, last.byteOffset, last.length + data.length);
    } else h.push(data);
  }

  /** Write what was held: small pieces joined into one write, large ones as they are. */
  release(): void {
    const h = this.held;
    if (h.length === 1) {
      const only = h[0]!;
      h.length = 0;
      this.push(only);
      return;
    }
    let total = 0;
    for (const b of h) total += b.length;
    if (total <= GATHER_MAX) {
      const all = join(h, total);
      h.length = 0;
      this.push(all);
      return;
    }
    for (const b of h.splice(0)) this.push(b);
  }

  /** Write what is queued (the sink drained or just opened); FIN follows when the source has ended. */
  flush(): void {
    const sink = this.sink;
    if (sink === undefined) return;
    const q = this.queue;
    if (q.length > 1 && this.queued <= GATHER_MAX) q.splice(0, q.length, join(q, this.queued));
    while (q.length > 0) {
      const chunk = q[0]!;
      const n = sink.write(chunk);
      if (n > 0) this.sent += n;
      if (n < chunk.length) {
        const taken = Math.max(0, n);
        q[0] = chunk.subarray(taken);
        this.queued -= taken;
        this.pause(PAUSE_BACKPRESSURE);
        return;
      }
      q.shift();
      this.queued -= chunk.length;
    }
    if (this.flow === Flow.Ending) {
      this.flow = Flow.Done;
      if (sink.shutdown) sink.shutdown();
      else sink.end(); // a Duplex without half-close: FIN and close
      return;
    }
    this.resume(PAUSE_BACKPRESSURE);
  }

  /** The source sent FIN, or its socket is gone: nothing more will come from it. */
  end(): void {
    if (this.flow !== Flow.Open) return;
    this.flow = Flow.Ending;
    if (this.queue.length === 0) this.flush(); // else the sink's drain (or open) flushes, then FIN
  }

  /** The sink's socket is gone: what is queued is lost, and the source is not read any more. */
  kill(): void {
    this.sink = undefined;
    this.drop();
    if (this.flow === Flow.Done) return;
    this.flow = Flow.Dead;
    this.pause(PAUSE_BACKPRESSURE);
  }

  /** Forget what is queued and held (the sink is closed). */
  drop(): void {
    this.dropQueued();
    this.held.length = 0;
  }

  /** Forget what is queued; what is held still goes at release (to the next sink, queued until it opens). */
  dropQueued(): void {
    this.queue.length = 0;
    this.queued = 0;
  }

  /** Nothing queued nor held: the sink has everything. */
  get empty(): boolean {
    return this.queue.length === 0 && this.held.length === 0;
  }

  get over(): boolean {
    return this.flow === Flow.Done || this.flow === Flow.Dead;
  }

  /** A new source (an upstream connection opened or taken from the pool): paused at once when a reason holds. */
  setSource(source: Duplex | undefined): void {
    this.source = source;
    if (this.paused !== 0) source?.pause();
  }

  /** The source goes elsewhere (back to the pool): read again, and this pipe's reasons forgotten. */
  releaseSource(): void {
    if (this.paused !== 0) this.source?.resume();
    this.source = undefined;
    this.paused = 0;
  }

  pause(reason: number): void {
    if (this.paused === 0) this.source?.pause();
    this.paused |= reason;
  }

  resume(reason: number): void {
    if (this.paused === 0) return;
    this.paused &= ~reason;
    if (this.paused === 0) this.source?.resume();
  }
}
