// Finds the line where a key or table is defined in TOML text, so semantic errors can say "file.toml:LINE".
//
// smol-toml parses the file but keeps no positions. This is a tolerant scanner, not a parser: it walks the text once,
// understands just enough syntax (strings of all four kinds, arrays, inline tables, comments) that nothing inside a
// value is mistaken for a key, and records the first line on which each key path appears. On anything it does not
// understand it skips to the next line; the real parse has already accepted or rejected the file.

type Lines = Map<string, { line: number; explicit: boolean }>;

const BARE_KEY = /[A-Za-z0-9_-]/;

class Scanner {
  pos = 0;
  readonly found: Lines = new Map();
  private readonly newlines: number[] = [];

  constructor(readonly src: string) {
    for (let i = 0; i < src.length; i++) if (src[i] === "\n") this.newlines.push(i);
  }

  /** 1-based line of an offset: the number of newlines before it, plus one. */
  lineAt(pos: number): number {
    let lo = 0;
    let hi = this.newlines.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.newlines[mid] ?? Infinity) < pos) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  }

  /**
   * Explicit definitions ([table], key = ...) beat implicit ones (the "tenants" in [tenants.acme]); otherwise the
   * first occurrence wins.
   */
  record(path: string[], pos: number, explicit: boolean): void {
    const id = JSON.stringify(path);
    const old = this.found.get(id);
    if (!old || (explicit && !old.explicit)) this.found.set(id, { line: this.lineAt(pos), explicit });
  }

  /** Records every proper prefix implicitly and the whole path explicitly. */
  recordPath(path: string[], pos: number): void {
    for (let i = 1; i < path.length; i++) this.record(path.slice(0, i), pos, false);
    this.record(path, pos, true);
  }

  peek(n = 0): string {
    return this.src[this.pos + n] ?? "";
  }

  startsWith(s: string): boolean {
    return this.src.startsWith(s, this.pos);
  }

  /** Spaces and tabs only: inside a key or a single-line value a newline ends the construct. */
  skipSpaces(): void {
    while (this.peek() === " " || this.peek() === "\t") this.pos++;
  }

  /** Whitespace, newlines and comments: allowed between array elements and (TOML 1.1) inline-table entries. */
  skipBlank(): void {
    for (;;) {
      const c = this.peek();
      if (c === " " || c === "\t" || c === "\r" || c === "\n") this.pos++;
      else if (c === "#") this.skipLine();
      else return;
    }
  }

  /** To the newline (not past it). */
  skipLine(): void {
    const nl = this.src.indexOf("\n", this.pos);
    this.pos = nl < 0 ? this.src.length : nl;
  }

  /** A dotted key such as `tenants . "acme.x"`; undefined when the text here is not a key. */
  key(): string[] | undefined {
    const parts: string[] = [];
    for (;;) {
      this.skipSpaces();
      const part = this.simpleKey();
      if (part === undefined) return undefined;
      parts.push(part);
      this.skipSpaces();
      if (this.peek() !== ".") return parts;
      this.pos++;
    }
  }

  private simpleKey(): string | undefined {
    const c = this.peek();
    if (c === '"' || c === "'") {
      const raw = this.string();
      return raw === undefined ? undefined : decodeQuoted(raw);
    }
    const start = this.pos;
    while (BARE_KEY.test(this.peek())) this.pos++;
    return this.pos > start ? this.src.slice(start, this.pos) : undefined;
  }

  /** Any of the four string kinds; returns its source text including quotes, or undefined if unterminated. */
  string(): string | undefined {
    const start = this.pos;
    const q = this.peek();
    const multi = this.src.startsWith(q.repeat(3), this.pos);
    const close = multi ? q.repeat(3) : q;
    this.pos += close.length;
    while (this.pos < this.src.length) {
      const c = this.peek();
      if (q === '"' && c === "\\") {
        this.pos += 2;
        continue;
      }
      if (!multi && c === "\n") return undefined;
      if (this.startsWith(close)) {
        // A multi-line string may end in up to five quotes: """a""""" is `a""`.
        let run = close.length;
        while (multi && run < 5 && this.peek(run) === q) run++;
        this.pos += run;
        return this.src.slice(start, this.pos);
      }
      this.pos++;
    }
    return undefined;
  }

  /** Skips one value; inline tables record their keys under `path`. */
  value(path: string[]): void {
    const c = this.peek();
    if (c === '"' || c === "'") this.string();
    else if (c === "[") this.array();
    else if (c === "{") this.inlineTable(path);
    else {
      // Numbers, booleans and dates ("1979-05-27 07:32:00" has a space) end at a delimiter, comment or newline.
      while (this.pos < this.src.length && !",]}#\n\r".includes(this.peek())) this.pos++;
    }
  }

  private array(): void {
    this.pos++;
    for (;;) {
      this.skipBlank();
      if (this.pos >= this.src.length) return;
      if (this.peek() === "]") {
        this.pos++;
        return;
      }
      const before = this.pos;
      // Tables inside arrays have no stable path to report; their keys are skipped, not recorded.
      this.value([]);
      this.skipBlank();
      if (this.peek() === ",") this.pos++;
      else if (this.pos === before) this.pos++;
    }
  }

  private inlineTable(path: string[]): void {
    this.pos++;
    for (;;) {
      this.skipBlank();
      if (this.pos >= this.src.length) return;
      if (this.peek() === "}") {
        this.pos++;
        return;
      }
      const at = this.pos;
      const key = this.key();
      this.skipSpaces();
      if (key === undefined || this.peek() !== "=") {
        this.pos = Math.max(this.pos, at + 1);
        continue;
      }
      this.pos++;
      this.skipSpaces();
      if (path.length > 0) this.recordPath([...path, ...key], at);
      this.value(path.length > 0 ? [...path, ...key] : []);
      this.skipBlank();
      if (this.peek() === ",") this.pos++;
    }
  }

  /** The whole document: table headers and key/value lines. */
  document(): void {
    let table: string[] = [];
    while (this.pos < this.src.length) {
      this.skipBlank();
      if (this.pos >= this.src.length) break;
      const at = this.pos;
      if (this.peek() === "[") {
        const double = this.startsWith("[[");
        this.pos += double ? 2 : 1;
        const key = this.key();
        if (key !== undefined && this.startsWith(double ? "]]" : "]")) {
          table = key;
          this.recordPath(table, at);
        }
      } else {
        const key = this.key();
        this.skipSpaces();
        if (key !== undefined && this.peek() === "=") {
          this.pos++;
          this.skipSpaces();
          this.recordPath([...table, ...key], at);
          this.value([...table, ...key]);
        }
      }
      this.skipLine();
    }
  }
}

function decodeQuoted(raw: string): string {
  if (raw.startsWith("'")) return raw.slice(1, -1);
  try {
    return JSON.parse(raw) as string;
  } catch {
    // TOML escapes JSON lacks (\e, \UXXXXXXXX): close enough for finding a line.
    return raw.slice(1, -1);
  }
}

// loadConfig asks for many keys of one source; scanning once per source keeps that linear.
let cache: { src: string; found: Lines } | undefined;

/** 1-based line where `path` is defined, else the line of its nearest enclosing table or key; undefined if none. */
export function locateKey(source: string, path: string[]): number | undefined {
  if (cache?.src !== source) {
    const s = new Scanner(source);
    s.document();
    cache = { src: source, found: s.found };
  }
  for (let n = path.length; n > 0; n--) {
    const hit = cache.found.get(JSON.stringify(path.slice(0, n)));
    if (hit) return hit.line;
  }
  return undefined;
}
