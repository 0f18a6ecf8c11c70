// Ingress routing: which tenant an HTTP Host or a TLS server name belongs to. Pure: no runtime imports.
//
// Patterns are a DNS name ("acme.example.com") or "*." and a DNS name ("*.acme.example.com"). A name matches its
// exact pattern first, else the longest wildcard whose domain is a proper suffix of it.
//
// Wildcard depth: "*.acme.example.com" matches names at ANY depth below acme.example.com (a.acme.example.com and
// x.y.acme.example.com), as nginx's "*.name", Envoy and Gateway API do, and never acme.example.com itself. One label
// only (RFC 6125 certificate wildcards, Kubernetes Ingress) would make "the longest wildcard" meaningless — at most
// one wildcard could ever match — and would send x.y.acme.example.com to 404 although acme owns the subtree; a tenant
// that wants a deeper name elsewhere claims it (an exact name or a longer wildcard wins).
//
// Names are host names, not addresses: an IP literal is refused as a pattern and never routes (RFC 6066 §3 keeps IP
// literals out of server_name too, so HTTP and SNI agree). No "*" catch-all.
//
// Cost of route(): one pass to validate, one Map lookup for the exact name, then one per label for the wildcards
// (longest suffix first) — independent of the number of tenants.

/** A host name is at most 253 bytes (RFC 1035 §2.3.4 without the trailing dot), a label at most 63. */
const MAX_NAME = 253;
const MAX_LABEL = 63;

/** Letters, digits and "-" (RFC 1123 §2.1); "." separates labels and is checked apart. */
const LDH = new Uint8Array(128);
for (let c = 0x30; c <= 0x39; c++) LDH[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) LDH[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) LDH[c] = 1;
LDH[0x2d] = 1;

const DOT = 0x2e;
const HYPHEN = 0x2d;

/**
 * Why `name` (no trailing dot, any case) is not a host name, or undefined when it is one. Checked on the original
 * characters, before any lower-casing: String.toLowerCase maps some non-ASCII letters onto ASCII ("\u212A", the
 * Kelvin sign, becomes "k"), which would let a name reach a tenant it does not spell.
 */
export function hostNameProblem(name: string): string | undefined {
  const n = name.length;
  if (n === 0) return "empty";
  if (n > MAX_NAME) return `longer than ${MAX_NAME} bytes`;
  let labelStart = 0;
  let digitsOnly = true;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? name.charCodeAt(i) : DOT;
    if (c === DOT) {
      const len = i - labelStart;
      if (len === 0) return i === n ? "ends with an empty label" : `empty label at offset ${i}`;
      if (len > MAX_LABEL) return `label "${name.slice(labelStart, i)}" is longer than ${MAX_LABEL} bytes`;
      if (name.charCodeAt(labelStart) === HYPHEN || name.charCodeAt(i - 1) === HYPHEN) {
        return `label "${name.slice(labelStart, i)}" starts or ends with "-"`;
      }
      if (i === n && digitsOnly) return "an IP address, not a host name (route by name)";
      labelStart = i + 1;
      digitsOnly = true;
      continue;
    }
    if (c >= 128 || LDH[c] !== 1) return `${describe(c)} is not allowed (letters, digits, "-" and "." only${c >= 128 ? "; write an internationalized name in its xn-- form" : ""})`;
    if (c < 0x30 || c > 0x39) digitsOnly = false;
  }
  return undefined;
}

function describe(c: number): string {
  return c > 0x20 && c < 0x7f ? JSON.stringify(String.fromCharCode(c)) : `U+${c.toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * A configured pattern, validated and normalized: lower case, no trailing dot. Throws an Error whose message quotes the
 * pattern and says what to write instead.
 */
export function normalizePattern(p: string): string {
  const q = JSON.stringify(p);
  let s = p.endsWith(".") ? p.slice(0, -1) : p;
  let wild = false;
  if (s === "*") throw new Error(`ingress host ${q}: a wildcard needs a domain after "*.", like "*.acme.example.com" (there is no catch-all)`);
  if (s.startsWith("*.")) {
    wild = true;
    s = s.slice(2);
  }
  const star = s.indexOf("*");
  if (star >= 0) {
    const whole = (star === 0 || s[star - 1] === ".") && (star === s.length - 1 || s[star + 1] === ".");
    throw new Error(
      whole
        ? `ingress host ${q}: only one leading "*." label is allowed, like "*.acme.example.com"`
        : `ingress host ${q}: "*" stands for whole labels only, as the first label: "*.acme.example.com"`,
    );
  }
  if (s.includes("/")) throw new Error(`ingress host ${q}: a host name, not a URL, like "acme.example.com"`);
  if (s.startsWith("[") || s.indexOf(":") !== s.lastIndexOf(":")) throw new Error(`ingress host ${q}: an IP address, not a host name (route by name)`);
  if (s.includes(":")) throw new Error(`ingress host ${q}: a host pattern has no port (it matches on every ingress listener)`);
  const problem = hostNameProblem(s);
  if (problem) throw new Error(`ingress host ${q}: ${problem}`);
  // Safe now: only ASCII letters, digits, "-" and "." are left.
  s = s.toLowerCase();
  return wild ? `*.${s}` : s;
}

/** A host pattern already held by another owner. */
export class HostClaimError extends Error {
  override name = "HostClaimError";
  constructor(
    /** The pattern, normalized. */
    readonly pattern: string,
    /** Who holds it. */
    readonly owner: string,
    /** Who asked for it. */
    readonly claimant: string,
  ) {
    super(`ingress host "${pattern}" is already claimed by tenant "${owner}"`);
  }
}

export interface HostRoute<T> {
  readonly owner: string;
  readonly value: T;
}

export class HostRouter<T> {
  /** Exact names → their owner's route. */
  private exact = new Map<string, HostRoute<T>>();
  /** "*.d" stored under "d". */
  private wild = new Map<string, HostRoute<T>>();
  /** Each owner's normalized patterns, for replacing and releasing them. */
  private held = new Map<string, string[]>();

  /**
   * Claim `patterns` for `owner` with `value`, replacing everything `owner` held before (set semantics: pass the full
   * list; an empty list holds nothing). All or nothing: an invalid pattern throws an Error, a pattern held by another
   * owner a HostClaimError, and either way the router is left as it was. An exact name and a wildcard covering it do
   * not conflict (the exact name wins in route()).
   */
  claim(owner: string, patterns: readonly string[], value: T): void {
    const wanted = [...new Set(patterns.map(normalizePattern))];
    for (const p of wanted) {
      const holder = this.lookup(p);
      if (holder !== undefined && holder.owner !== owner) throw new HostClaimError(p, holder.owner, owner);
    }
    this.release(owner);
    const route: HostRoute<T> = Object.freeze({ owner, value });
    for (const p of wanted) {
      if (p.startsWith("*.")) this.wild.set(p.slice(2), route);
      else this.exact.set(p, route);
    }
    if (wanted.length > 0) this.held.set(owner, wanted);
  }

  /** Drop every pattern `owner` holds; nothing when it holds none. */
  release(owner: string): void {
    const old = this.held.get(owner);
    if (old === undefined) return;
    for (const p of old) {
      if (p.startsWith("*.")) this.wild.delete(p.slice(2));
      else this.exact.delete(p);
    }
    this.held.delete(owner);
  }

  /**
   * The route for an HTTP Host value or a TLS server name: the exact name, else the longest wildcard. Case-insensitive;
   * a ":port" suffix and one trailing dot are ignored. An IP literal ("10.0.0.5:80", "[::1]:80": "[" and ":" are not
   * name characters) or anything else that is not a host name routes nowhere. The returned object is shared and frozen.
   */
  route(host: string): HostRoute<T> | undefined {
    let name = host;
    const colon = name.lastIndexOf(":");
    if (colon >= 0) {
      for (let i = colon + 1; i < name.length; i++) {
        const c = name.charCodeAt(i);
        if (c < 0x30 || c > 0x39) return undefined;
      }
      name = name.slice(0, colon);
    }
    if (name.charCodeAt(name.length - 1) === DOT) name = name.slice(0, -1);
    if (hostNameProblem(name) !== undefined) return undefined;
    name = name.toLowerCase();
    const hit = this.exact.get(name);
    if (hit !== undefined) return hit;
    for (let dot = name.indexOf("."); dot >= 0; dot = name.indexOf(".", dot + 1)) {
      const w = this.wild.get(name.slice(dot + 1));
      if (w !== undefined) return w;
    }
    return undefined;
  }

  /** Who holds `pattern` ("acme.example.com" or "*.acme.example.com", any case); undefined when nobody or invalid. */
  ownerOf(pattern: string): string | undefined {
    let p: string;
    try {
      p = normalizePattern(pattern);
    } catch {
      return undefined;
    }
    return this.lookup(p)?.owner;
  }

  /** The patterns `owner` holds, normalized, in claim order. */
  patternsOf(owner: string): readonly string[] {
    return this.held.get(owner) ?? [];
  }

  private lookup(normalized: string): HostRoute<T> | undefined {
    return normalized.startsWith("*.") ? this.wild.get(normalized.slice(2)) : this.exact.get(normalized);
  }
}
