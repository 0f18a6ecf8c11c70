// Copying bytes: joining buffers, and the writer a connection's upstream request heads are written with.
import { Buffer } from "node:buffer";

/** `a` then `b` in one new buffer (a head that arrived in two pieces). */
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** The buffers of `list` one after the other; `total` is their summed length when the caller has it. */
export function join(list: readonly Uint8Array[], total = -1): Uint8Array {
  if (total < 0) {
    total = 0;
    for (const b of list) total += b.length;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const b of list) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** Buffer's copy takes ranges as numbers: no view per copy, as subarray + set would make. */
const bufferCopy = Buffer.prototype.copy as (this: Uint8Array, target: Uint8Array, targetStart: number, sourceStart: number, sourceEnd: number) => number;

/**
 * Bytes written one piece after another into one buffer, which is kept and written again from the
 * start (begin): a message is assembled with no allocation but the view done() returns. That view is
 * valid until the next begin(); a caller whose last view may still be held elsewhere asks for a fresh
 * buffer instead. A buffer grown past `keepMax` serves one message only: one large message must not
 * make the writer hold that much for as long as it lives (a connection that sent one large head, then
 * idles).
 */
export class ByteWriter {
  private buf: Uint8Array;
  private at = 0;

  constructor(
    private readonly size: number,
    private readonly keepMax: number,
  ) {
    this.buf = new Uint8Array(size);
  }

  /** Start the next message at offset 0: in the same buffer, or in a new one when `fresh`. */
  begin(fresh: boolean): void {
    if (fresh || this.buf.length > this.keepMax) this.buf = new Uint8Array(this.size);
    this.at = 0;
  }

  /** src[a, b): the whole of `src` by default. */
  bytes(src: Uint8Array, a = 0, b = src.length): void {
    this.room(b - a);
    this.at += bufferCopy.call(src, this.buf, this.at, a, b);
  }

  /** A latin1 string, one byte per char (the engine reads heads as latin1: a slice of one goes back as its bytes). */
  latin1(text: string): void {
    this.room(text.length);
    const buf = this.buf;
    let at = this.at;
    for (let i = 0; i < text.length; i++) buf[at++] = text.charCodeAt(i);
    this.at = at;
  }

  /** What was written since begin(). */
  done(): Uint8Array {
    return this.buf.subarray(0, this.at);
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(2 * this.buf.length, this.at + n));
    bigger.set(this.buf.subarray(0, this.at));
    this.buf = bigger;
  }
}
