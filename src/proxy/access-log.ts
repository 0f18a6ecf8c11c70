// Access log: one line per request, text or JSON, encoded straight into a byte buffer and written in batches so logging never blocks the request path.
import type { Exchange } from "../engine/types.ts";

/** One line: the engine's record of an exchange (tenant, method, path, status, bytes, ms to response head). */
export type AccessEntry = Exchange;

export interface AccessSink {
  (entry: AccessEntry): void;
  /** Write what is buffered now: before the worker stops, so no line is lost. */
  flush(): void;
}

/** A batch is written once it holds this many bytes (or 50 ms after its first line). */
const BATCH_BYTES = 65536;

/** A sink writing to stdout, flushed every 50 ms or 64 kB, whichever comes first. */
export function stdoutAccessLog(format: "text" | "json"): AccessSink {
  return accessLog(format, (chunk) => process.stdout.write(chunk));
}

/**
 * A sink handing its batches to `write` (stdout in the daemon; a counter in the engine micro-benchmark).
 * Each entry's fields are encoded into one reused byte buffer (UTF-8, as writing the line as a string
 * would): no template string, no growing JS string, the timestamp formatted once per millisecond.
 * Measured in bench/engine-micro.ts: this was +24% CPU per exchange as strings.
 */
export function accessLog(format: "text" | "json", write: (chunk: Uint8Array) => void): AccessSink {
  const out = new LineWriter();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    timer = undefined;
    // A copy: the writer may keep the chunk until the write completes, and the buffer is reused at once.
    if (out.len > 0) write(out.take());
  };
  const encode = format === "json" ? jsonLine : textLine;
  const sink = (e: AccessEntry) => {
    // Worst case per char: a JSON escape (\u00XX, 6 bytes); strings are written twice at most (path, host).
    out.reserve(128 + 6 * (e.tenant.length + e.method.length + e.path.length + (e.host?.length ?? 0) + (e.direction?.length ?? 0)));
    encode(out, e);
    if (out.len > BATCH_BYTES) flush();
    else timer ??= setTimeout(flush, 50);
  };
  return Object.assign(sink, {
    flush() {
      if (timer) clearTimeout(timer);
      flush();
    },
  });
}

// `${time} access ${direction} tenant=${tenant} ${method} ${JSON.stringify(path)} ${status} ${bytes ?? "-"} ${ms.toFixed(1)}ms host=…`
function textLine(o: LineWriter, e: AccessEntry): void {
  o.time();
  o.ascii(" access ");
  if (e.direction) {
    o.utf8(e.direction);
    o.byte(0x20);
  }
  o.ascii("tenant=");
  o.utf8(e.tenant);
  o.byte(0x20);
  o.utf8(e.method);
  o.byte(0x20);
  o.json(e.path);
  o.byte(0x20);
  o.int(e.status);
  o.byte(0x20);
  if (e.bytes === undefined) o.byte(0x2d);
  else o.int(e.bytes);
  o.byte(0x20);
  o.fixed1(e.ms);
  o.ascii("ms");
  if (e.host !== undefined) {
    o.ascii(" host=");
    if (e.host) o.json(e.host);
    else o.byte(0x2d);
  }
  o.byte(0x0a);
}

// JSON.stringify({ time, type: "access", ...e, bytes: e.bytes ?? null, ms: Math.round(e.ms * 10) / 10 }), in the engine's key order.
function jsonLine(o: LineWriter, e: AccessEntry): void {
  o.ascii('{"time":"');
  o.time();
  o.ascii('","type":"access",');
  if (e.direction !== undefined) {
    o.ascii('"direction":');
    o.json(e.direction);
    o.byte(0x2c);
  }
  o.ascii('"tenant":');
  o.json(e.tenant);
  if (e.host !== undefined) {
    o.ascii(',"host":');
    o.json(e.host);
  }
  o.ascii(',"method":');
  o.json(e.method);
  o.ascii(',"path":');
  o.json(e.path);
  o.ascii(',"status":');
  o.int(e.status);
  o.ascii(',"bytes":');
  if (e.bytes === undefined) o.ascii("null");
  else o.int(e.bytes);
  o.ascii(',"ms":');
  const t = Math.round(e.ms * 10);
  o.int(Math.trunc(t / 10));
  if (t % 10 !== 0) {
    o.byte(0x2e);
    o.byte(0x30 + (t % 10));
  }
  o.ascii("}\n");
}

const HEX = "0123456789abcdef";

/** A growable byte buffer with the few encoders a log line needs. */
class LineWriter {
  buf = new Uint8Array(2 * BATCH_BYTES);
  len = 0;
  private stampMs = -1;
  private stamp = new Uint8Array(32);
  private stampLen = 0;

  /** Room for `n` more bytes. */
  reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    bigger.set(this.buf.subarray(0, this.len));
    this.buf = bigger;
  }

  /** What is buffered, as a new array; the buffer is empty after. */
  take(): Uint8Array {
    const chunk = this.buf.slice(0, this.len);
    this.len = 0;
    return chunk;
  }

  byte(b: number): void {
    this.buf[this.len++] = b;
  }

  /** A literal known to be ASCII. */
  ascii(s: string): void {
    const b = this.buf;
    let at = this.len;
    for (let i = 0; i < s.length; i++) b[at++] = s.charCodeAt(i);
    this.len = at;
  }

  /** Now, as Date.prototype.toISOString writes it; formatted once per millisecond. */
  time(): void {
    const ms = Date.now();
    if (ms !== this.stampMs) {
      const iso = new Date(ms).toISOString();
      for (let i = 0; i < iso.length; i++) this.stamp[i] = iso.charCodeAt(i);
      this.stampLen = iso.length;
      this.stampMs = ms;
    }
    for (let i = 0; i < this.stampLen; i++) this.buf[this.len++] = this.stamp[i]!;
  }

  /** A non-negative integer, in decimal. */
  int(n: number): void {
    if (n < 10) {
      this.buf[this.len++] = 0x30 + n;
      return;
    }
    let digits = 1;
    for (let p = 10; p <= n; p *= 10) digits++;
    let at = this.len + digits;
    this.len = at;
    for (let v = n; digits-- > 0; v = Math.trunc(v / 10)) this.buf[--at] = 0x30 + (v % 10);
  }

  /** `ms.toFixed(1)`: tenths, rounded as toFixed does (a tie in the binary value is settled by toFixed itself). */
  fixed1(ms: number): void {
    const p = ms * 10;
    let t = Math.round(p);
    if (Math.abs(p - Math.floor(p) - 0.5) < 1e-6) t = Math.round(Number(ms.toFixed(1)) * 10);
    this.int(Math.trunc(t / 10));
    this.byte(0x2e);
    this.byte(0x30 + (t % 10));
  }

  /** A string as UTF-8; a lone surrogate as U+FFFD, as a string written to a stream would be. */
  utf8(s: string): void {
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x80) this.buf[this.len++] = c;
      else i = this.wide(s, i, c, false);
    }
  }

  /** JSON.stringify(s), as UTF-8. */
  json(s: string): void {
    const b = this.buf;
    b[this.len++] = 0x22;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x20 && c < 0x80 && c !== 0x22 && c !== 0x5c) b[this.len++] = c;
      else if (c === 0x22 || c === 0x5c) {
        b[this.len++] = 0x5c;
        b[this.len++] = c;
      } else if (c < 0x20) {
        const short = ESCAPES[c];
        if (short) this.ascii(short);
        else this.ascii(`\\u00${HEX[c >> 4]}${HEX[c & 15]}`);
      } else i = this.wide(s, i, c, true);
    }
    b[this.len++] = 0x22;
  }

  /** The char at s[i] (>= 0x80) as UTF-8; returns the index of its last UTF-16 unit. */
  private wide(s: string, i: number, c: number, json: boolean): number {
    const b = this.buf;
    if (c < 0x800) {
      b[this.len++] = 0xc0 | (c >> 6);
      b[this.len++] = 0x80 | (c & 63);
      return i;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = s.charCodeAt(i + 1);
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        b[this.len++] = 0xf0 | (cp >> 18);
        b[this.len++] = 0x80 | ((cp >> 12) & 63);
        b[this.len++] = 0x80 | ((cp >> 6) & 63);
        b[this.len++] = 0x80 | (cp & 63);
        return i + 1;
      }
      // A lone surrogate: JSON.stringify escapes it; UTF-8 has no such char.
      if (json) this.ascii(`\\u${c.toString(16)}`);
      else c = 0xfffd;
      if (json) return i;
    }
    b[this.len++] = 0xe0 | (c >> 12);
    b[this.len++] = 0x80 | ((c >> 6) & 63);
    b[this.len++] = 0x80 | (c & 63);
    return i;
  }
}

const ESCAPES: (string | undefined)[] = [];
ESCAPES[0x08] = "\\b";
ESCAPES[0x09] = "\\t";
ESCAPES[0x0a] = "\\n";
ESCAPES[0x0c] = "\\f";
ESCAPES[0x0d] = "\\r";
