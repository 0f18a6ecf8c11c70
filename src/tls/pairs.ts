// Certificate pairs and upstream CAs in use by tenants: read once per file, shared, watched, and re-read on rotation.
import { statSync } from "node:fs";
import type { TenantSpec } from "../config/types.ts";
import { logger } from "../log.ts";
import { expiryWarning, type KeyPair, loadCa, loadKeyPair } from "./material.ts";
import { FileWatch } from "./watch.ts";

/** A certificate and key file pair in use by tenants: what is served now, and why the files on disk are not (if so). */
export interface PairState {
  cert: string;
  key: string;
  served?: KeyPair;
  error?: string;
  users: Set<string>;
}

/** What an attach needs from files: the https:// listeners' pair, an upstream CA (PEM text). */
export interface Material {
  tls?: { cert: string; key: string };
  upstreamCa?: string;
}

/** A tenant as the cache sees it: its spec, and the pair it holds (a key of `pairs`), kept up to date here. */
export interface PairUser {
  spec: TenantSpec;
  pair?: string;
}

/** An attach that cannot start because a file it needs is unusable: the tenant's failure, never another's. */
export class MaterialError extends Error {
  readonly code = "ETLS";
}

export class CertificatePairs {
  /** Certificate pairs in use, by "cert\0key": tenants sharing files share one read and one watch. */
  readonly pairs = new Map<string, PairState>();
  /** Rotation: every file of a pair in use is looked at once a second (see watch.ts for why polling). */
  private readonly files = new FileWatch((changed) => this.filesChanged(changed));
  /** upstream_ca files by path, read again only when their stat changes: 10,000 tenants often share one CA. */
  private readonly cas = new Map<string, { sig: string; pem: string }>();

  /** `rotated(id, users)`: pair `id` serves new files now; its users need new listeners. */
  constructor(private readonly rotated: (id: string, users: ReadonlySet<string>) => void) {}

  /** What the worker needs from files for `t`: its pair (read now if never read), an upstream CA. Throws MaterialError. */
  materialFor(t: PairUser): Material | undefined {
    const spec = t.spec;
    if (!spec.tls && !spec.upstreamCa) return undefined;
    const material: Material = {};
    if (spec.tls) {
      const p = this.pairOf(t);
      if (!p.served) this.readPair(p);
      if (!p.served) throw new MaterialError(p.error ?? `tls_cert ${p.cert}: not loaded`);
      material.tls = { cert: p.served.cert, key: p.served.key };
    }
    if (spec.upstreamCa) {
      try {
        material.upstreamCa = this.caText(spec.upstreamCa);
      } catch (err) {
        throw new MaterialError((err as Error).message);
      }
    }
    return material;
  }

  /** `t` no longer uses its pair (changed or removed): the pair goes with its last user. */
  release(t: PairUser): void {
    const id = t.pair;
    if (id === undefined) return;
    t.pair = undefined;
    const p = this.pairs.get(id);
    if (!p) return;
    p.users.delete(t.spec.name);
    if (p.users.size > 0) return;
    this.pairs.delete(id);
    this.files.unwatch(p.cert, id);
    this.files.unwatch(p.key, id);
    if (this.pairs.size === 0) this.files.stop();
  }

  /** reload: every pair in use is read again now (changes apply as on rotation). */
  refresh(): void {
    const all: string[] = [];
    for (const p of this.pairs.values()) all.push(p.cert, p.key);
    this.filesChanged(all);
  }

  stop(): void {
    this.files.stop();
  }

  private caText(file: string): string {
    let sig = "";
    try {
      const st = statSync(file);
      sig = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      // loadCa says why, naming the file.
    }
    const known = this.cas.get(file);
    if (sig && known?.sig === sig) return known.pem;
    const pem = loadCa(file);
    if (sig) this.cas.set(file, { sig, pem });
    return pem;
  }

  private pairOf(t: PairUser): PairState {
    const { cert, key } = t.spec.tls!;
    const id = `${cert}\0${key}`;
    if (t.pair !== undefined && t.pair !== id) this.release(t);
    let p = this.pairs.get(id);
    if (!p) {
      p = { cert, key, users: new Set() };
      this.pairs.set(id, p);
      this.files.watch(cert, id);
      this.files.watch(key, id);
      this.files.start();
    }
    p.users.add(t.spec.name);
    t.pair = id;
    return p;
  }

  /** Read a pair's files; true when what is served changed. A bad read keeps what was served. */
  private readPair(p: PairState): boolean {
    let next: KeyPair;
    try {
      next = loadKeyPair(p.cert, p.key);
    } catch (err) {
      const message = (err as Error).message;
      if (p.error !== message) {
        const users = [...p.users].slice(0, 5).join(", ") + (p.users.size > 5 ? `, … (${p.users.size})` : "");
        const keeps = p.served ? "the certificate served before stays in use" : "no certificate to serve";
        logger.error(`tls: ${message}; ${keeps} for tenant(s) ${users}`);
      }
      p.error = message;
      return false;
    }
    p.error = undefined;
    if (p.served && p.served.cert === next.cert && p.served.key === next.key) return false;
    const warning = expiryWarning(next);
    if (warning) logger.warn(`tls: ${warning}`);
    p.served = next;
    return true;
  }

  /** Files changed on disk: re-read their pairs; the users of a pair that changed get new listeners (old connections finish). */
  private filesChanged(changed: string[]): void {
    const set = new Set(changed);
    for (const [id, p] of this.pairs) {
      if (!set.has(p.cert) && !set.has(p.key)) continue;
      const before = p.served !== undefined;
      if (!this.readPair(p)) continue;
      logger.info(`tls: ${p.cert} ${before ? "changed" : "is usable now"} (expires ${p.served!.notAfter.toISOString()}); re-attaching ${p.users.size} tenant(s)`);
      this.rotated(id, p.users);
    }
  }
}
