// Refuses TOML shaped to exhaust the parsers — keys nested thousands deep, or hundreds of thousands of them — before either parser runs.
//
// Both parsers build what they read: a 200 kB line holding one key of 30,000 dotted parts costs smol-toml ~22 MB and
// toml-eslint-parser (asked for error positions) ~35 MB more, a 700 kB one of 100,000 parts ~160 MB. One linear pass
// over the text counts, for every key, how deep its path goes (table header, dotted parts, inline tables, array
// levels) and how many keys and values there are, and stops at the first bound passed, naming the line. It is no
// validator: text it does not follow is left to smol-toml, which refuses it with its own message.

/** nsproxy's deepest real path is tenants.NAME.headers.NAME (4); an array of tables adds a level. */
export const MAX_KEY_DEPTH = 16;

/** Where and why a text passes a bound: `line` is 1-based. */
export interface TomlBoundError {
  line: number;
  message: string;
}

class Bound extends Error {
  constructor(
    readonly at: number,
    message: string,
  ) {
    super(message);
  }
}

const WS = new Set([0x20, 0x09]);

/** The first bound `source` passes, or undefined. `maxItems` bounds keys plus array elements. */
export function checkTomlBounds(source: string, maxItems: number): TomlBoundError | undefined {
  try {
    new Scan(source, maxItems).document();
    return undefined;
  } catch (e) {
    if (!(e instanceof Bound)) throw e;
    let line = 1;
    for (let i = source.indexOf("\n"); i >= 0 && i < e.at; i = source.indexOf("\n", i + 1)) line++;
    return { line, message: e.message };
  }
}

/** Thrown when the scan meets text it does not follow: the rest of the line is skipped. */
class Lost extends Error {}

class Scan {
  private p = 0;
  private items = 0;
  constructor(
    private readonly s: string,
    private readonly maxItems: number,
  ) {}

  document(): void {
    let table = 0;
    while (this.p < this.s.length) {
      this.skip(false);
      if (this.p >= this.s.length) break;
      const c = this.s.charCodeAt(this.p);
      try {
        if (c === 0x5b /* [ */) {
          const array = this.s.charCodeAt(this.p + 1) === 0x5b;
          this.p += array ? 2 : 1;
          table = this.key(0x5d /* ] */, 0) + (array ? 1 : 0);
          this.p += array ? 2 : 1;
        } else {
          this.value(this.key(0x3d /* = */, table) + table);
        }
      } catch (e) {
        if (!(e instanceof Lost)) throw e;
        const nl = this.s.indexOf("\n", this.p);
        this.p = nl < 0 ? this.s.length : nl + 1;
      }
    }
  }

  /** Skip spaces, tabs, comments and (with `newlines`, or between statements) line ends. */
  private skip(inLine: boolean): void {
    while (this.p < this.s.length) {
      const c = this.s.charCodeAt(this.p);
      if (WS.has(c) || (!inLine && (c === 0x0a || c === 0x0d))) this.p++;
      else if (c === 0x23 /* # */) {
        const nl = this.s.indexOf("\n", this.p);
        this.p = nl < 0 ? this.s.length : nl;
      } else return;
    }
  }

  private count(): void {
    if (++this.items > this.maxItems) throw new Bound(this.p, `more than ${this.maxItems} keys and values`);
  }

  /** A (dotted) key up to `end`, which is consumed for `=` (a table header's `]` is left for the caller); returns its parts. */
  private key(end: number, base: number): number {
    const start = this.p;
    let parts = 1;
    this.count();
    while (this.p < this.s.length) {
      const c = this.s.charCodeAt(this.p);
      if (c === end) {
        if (end === 0x3d) this.p++;
        return parts;
      }
      if (c === 0x0a) throw new Lost();
      if (c === 0x22 || c === 0x27) this.string();
      else {
        if (c === 0x2e /* . */ && base + ++parts > MAX_KEY_DEPTH) {
          throw new Bound(start, `a key nested deeper than ${MAX_KEY_DEPTH} levels ("${this.s.slice(start, Math.min(this.p, start + 40))}…")`);
        }
        this.p++;
      }
    }
    throw new Lost();
  }

  /** A value whose path is `depth` deep: inline tables and arrays go one level deeper per key part and per array. */
  private value(depth: number): void {
    if (depth > MAX_KEY_DEPTH) throw new Bound(this.p, `a value nested deeper than ${MAX_KEY_DEPTH} levels`);
    this.skip(true);
    const c = this.s.charCodeAt(this.p);
    if (c === 0x22 || c === 0x27) return this.string();
    if (c === 0x5b /* [ */) return this.list(0x5d, () => {
      this.count();
      this.value(depth + 1);
    });
    if (c === 0x7b /* { */) return this.list(0x7d, () => this.value(this.key(0x3d, depth) + depth));
    // A number, date, boolean: up to what ends a value.
    while (this.p < this.s.length && !/[\s,\]}#]/.test(this.s[this.p]!)) this.p++;
  }

  /** `[…]` or `{…}`: items separated by commas, newlines and comments allowed (TOML 1.1 inline tables too). */
  private list(close: number, item: () => void): void {
    this.p++;
    for (;;) {
      this.skip(false);
      if (this.p >= this.s.length) throw new Lost();
      const c = this.s.charCodeAt(this.p);
      if (c === close) {
        this.p++;
        return;
      }
      if (c === 0x2c /* , */) this.p++;
      else {
        const before = this.p;
        item();
        if (this.p === before) throw new Lost();
      }
    }
  }

  /** A basic or literal string, one-line or multi-line. */
  private string(): void {
    const q = this.s[this.p]!;
    const multi = this.s.startsWith(q.repeat(3), this.p);
    if (multi) {
      let i = this.p + 3;
      for (;;) {
        const end = this.s.indexOf(q.repeat(3), i);
        if (end < 0) throw new Lost();
        if (q === '"' && backslashes(this.s, end) % 2 === 1) {
          i = end + 1;
          continue;
        }
        // Up to two quotes may sit right before the closing three.
        let stop = end + 3;
        while (this.s[stop] === q && stop < end + 5) stop++;
        this.p = stop;
        return;
      }
    }
    let i = this.p + 1;
    while (i < this.s.length) {
      const c = this.s[i]!;
      if (c === "\n") throw new Lost();
      if (c === "\\" && q === '"') i += 2;
      else if (c === q) {
        this.p = i + 1;
        return;
      } else i++;
    }
    throw new Lost();
  }
}

function backslashes(s: string, at: number): number {
  let n = 0;
  while (at - n - 1 >= 0 && s[at - n - 1] === "\\") n++;
  return n;
}
