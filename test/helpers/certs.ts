// Certificates for tests, made with openssl in a directory of the test's own (no network): a CA and leaves it signs.
import { mkdirSync, writeFileSync } from "node:fs";

export const haveOpenssl = Bun.spawnSync(["sh", "-c", "command -v openssl"]).exitCode === 0;

function openssl(args: string[], cwd?: string): void {
  const r = Bun.spawnSync(["openssl", ...args], { stderr: "pipe", stdout: "pipe", cwd });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr.toString()}`);
}

export interface Ca {
  dir: string;
  cert: string;
  key: string;
}

/** A CA (EC P-256: fast to make) in dir/ca.crt, dir/ca.key. */
export function makeCa(dir: string): Ca {
  mkdirSync(dir, { recursive: true });
  const cert = `${dir}/ca.crt`;
  const key = `${dir}/ca.key`;
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=nsproxy test CA"]);
  return { dir, cert, key };
}

export interface Leaf {
  cert: string;
  key: string;
}

let serial = 1;

/**
 * A leaf for 127.0.0.1, ::1 and `ips` signed by `ca`, written to `${base}.crt` / `${base}.key`, with subject CN=`cn`.
 * `days` (default 30) from now; or `expired`: valid in January 2025 only (openssl ca sets past dates).
 */
export function makeLeaf(ca: Ca, base: string, cn: string, opts: { days?: number; expired?: boolean; ips?: string[]; dns?: string[] } = {}): Leaf {
  const cert = `${base}.crt`;
  const key = `${base}.key`;
  const csr = `${base}.csr`;
  const ext = `${base}.ext`;
  const names = [...["127.0.0.1", "::1", ...(opts.ips ?? [])].map((ip) => `IP:${ip}`), ...(opts.dns ?? []).map((n) => `DNS:${n}`)];
  writeFileSync(ext, `subjectAltName=${names.join(",")}\n`);
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${cn}`]);
  if (!opts.expired) {
    openssl(["x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-set_serial", String(serial++), "-days", String(opts.days ?? 30), "-extfile", ext, "-out", cert]);
    return { cert, key };
  }
  // `openssl x509` (3.0) cannot set dates in the past; `openssl ca` can, with a database of its own.
  const db = `${base}-cadb`;
  mkdirSync(db, { recursive: true });
  writeFileSync(`${db}/index.txt`, "");
  writeFileSync(`${db}/serial`, `${(serial++).toString(16).padStart(2, "0")}\n`);
  writeFileSync(
    `${db}/ca.cnf`,
    `[ca]\ndefault_ca = d\n[d]\ndatabase = ${db}/index.txt\nnew_certs_dir = ${db}\nserial = ${db}/serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n`,
  );
  openssl(["ca", "-batch", "-config", `${db}/ca.cnf`, "-cert", ca.cert, "-keyfile", ca.key, "-in", csr, "-out", cert, "-startdate", "20250101000000Z", "-enddate", "20250201000000Z", "-notext"]);
  return { cert, key };
}

/** The subject CN and the protocol a TLS server at 127.0.0.1:port inside `ns` presents, as curl saw it (-v). */
export function subjectOf(curlVerbose: string): string | undefined {
  return /subject: .*CN ?= ?([^,\n;]+)/.exec(curlVerbose)?.[1]?.trim();
}
