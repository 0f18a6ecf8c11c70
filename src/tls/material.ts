// Certificate and key files for https:// listeners and upstream CAs: read, checked and described for operators.
import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from "node:crypto";
import { EXIT, NsproxyError } from "../errors.ts";
import { FileRefused, readBounded } from "../fs/read-bounded.ts";

export interface KeyPair {
  certFile: string;
  keyFile: string;
  /** The CERTIFICATE blocks of the file in their order (leaf, then intermediates), for the listener. */
  cert: string;
  /** The one PRIVATE KEY block of the key file. */
  key: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the leaf's DER, colon-separated upper-case hex as `openssl x509 -fingerprint -sha256` prints it. */
  fingerprint: string;
  /** The leaf's subject on one line: "CN=acme.example, O=Acme". */
  subject: string;
  /** The leaf's subjectAltName DNS names and IP addresses. */
  names: string[];
}

export type TlsSetting = "tls_cert" | "tls_key" | "upstream_ca";
export type TlsFileKind =
  | "missing" // ENOENT, ENOTDIR
  | "unreadable" // permission, a directory, not a regular file, I/O error
  | "too-large"
  | "not-pem" // no PEM block of the wanted kind (empty, DER, a key where a certificate belongs)
  | "invalid" // a PEM block that does not parse
  | "no-key"
  | "encrypted"
  | "mismatch"
  | "expired"
  | "not-yet-valid";

/** A certificate or key file that cannot serve; a configuration error (exit 2) for `check`, a tenant's failure for `run`. */
export class TlsFileError extends NsproxyError {
  readonly setting: TlsSetting;
  readonly file: string;
  readonly kind: TlsFileKind;
  constructor(setting: TlsSetting, file: string, kind: TlsFileKind, message: string, cause?: unknown) {
    super(message, { exitCode: EXIT.usage, cause });
    this.name = "TlsFileError";
    this.setting = setting;
    this.file = file;
    this.kind = kind;
  }
}

/** A wrong path to a huge file must not eat memory; a CA bundle of every public root is about 220 kB. */
export const MAX_FILE_BYTES = 1 << 20;
/** Issuers that stamp notBefore with the second of issue must not fail against a clock a little behind theirs. */
export const NOT_BEFORE_SKEW_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

interface PemBlock {
  label: string;
  text: string;
}

export function loadKeyPair(certFile: string, keyFile: string, now = new Date()): KeyPair {
  const certText = readPemFile("tls_cert", certFile);
  const blocks = certificateBlocks("tls_cert", certFile, certText);
  const certs = blocks.map((b, i) => parseCertificate("tls_cert", certFile, b, i, blocks.length));
  const leaf = certs[0] as X509Certificate;
  const key = parseKey(keyFile, keyFile === certFile ? certText : readPemFile("tls_key", keyFile));

  if (!keyMatches(leaf, key.object)) {
    const at = certs.findIndex((c) => keyMatches(c, key.object));
    const message =
      at > 0
        ? `tls_cert ${certFile}: the certificate for key ${keyFile} is number ${at + 1} in the file; the leaf must come first, then intermediates`
        : `tls_key ${keyFile} does not match certificate ${certFile}`;
    throw new TlsFileError(at > 0 ? "tls_cert" : "tls_key", at > 0 ? certFile : keyFile, "mismatch", message);
  }

  const notBefore = validityDate(leaf.validFromDate, leaf.validFrom);
  const notAfter = validityDate(leaf.validToDate, leaf.validTo);
  if (now.getTime() > notAfter.getTime()) {
    throw new TlsFileError("tls_cert", certFile, "expired", `tls_cert ${certFile} expired on ${day(notAfter)} (not after ${notAfter.toISOString()})`);
  }
  if (now.getTime() + NOT_BEFORE_SKEW_MS < notBefore.getTime()) {
    throw new TlsFileError("tls_cert", certFile, "not-yet-valid", `tls_cert ${certFile} is not valid yet (not before ${notBefore.toISOString()})`);
  }
  return {
    certFile,
    keyFile,
    cert: blocks.map((b) => b.text).join("\n") + "\n",
    key: `${key.block.text}\n`,
    notBefore,
    notAfter,
    fingerprint: leaf.fingerprint256,
    subject: (leaf.subject ?? "").split("\n").join(", "),
    names: altNames(leaf.subjectAltName),
  };
}

/** The PEM text of every certificate in a CA file (`upstream_ca`), checked to parse. */
export function loadCa(file: string, setting: TlsSetting = "upstream_ca"): string {
  const blocks = certificateBlocks(setting, file, readPemFile(setting, file));
  blocks.forEach((b, i) => parseCertificate(setting, file, b, i, blocks.length));
  return blocks.map((b) => b.text).join("\n") + "\n";
}

/** A line for the log and `check` when the certificate expires within `days`, or has already. */
export function expiryWarning(p: KeyPair, now = new Date(), days = 14): string | undefined {
  const left = p.notAfter.getTime() - now.getTime();
  const end = `(not after ${p.notAfter.toISOString()})`;
  if (left <= 0) return `tls_cert ${p.certFile} expired on ${day(p.notAfter)} ${end}`;
  if (left >= days * DAY_MS) return undefined;
  const whole = Math.floor(left / DAY_MS);
  const within = whole === 0 ? "within a day" : `in ${whole} day${whole === 1 ? "" : "s"}`;
  return `tls_cert ${p.certFile} expires on ${day(p.notAfter)}, ${within} ${end}`;
}

/** For `tenant ls --json`. `daysLeft` counts whole days and is negative once expired. */
export function describeExpiry(p: KeyPair, now = new Date()): { notAfter: string; daysLeft: number } {
  return { notAfter: p.notAfter.toISOString(), daysLeft: Math.floor((p.notAfter.getTime() - now.getTime()) / DAY_MS) };
}

/**
 * X509Certificate.checkPrivateKey arrived in Deno 2.7 (before, it throws "not implemented"); comparing the DER of the
 * two public keys is the same test and works everywhere.
 */
export function keyMatches(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.checkPrivateKey(key);
  } catch {
    const der = (k: KeyObject) => k.export({ type: "spki", format: "der" });
    return der(cert.publicKey).equals(der(createPublicKey(key)));
  }
}

function readPemFile(setting: TlsSetting, file: string): string {
  try {
    return readBounded(file, MAX_FILE_BYTES).toString("latin1");
  } catch (e) {
    if (!(e instanceof FileRefused)) throw e;
    const reason = e.kind === "too-large" ? `larger than ${MAX_FILE_BYTES} bytes, not a certificate or key file` : e.reason;
    const kind: TlsFileKind = e.kind === "missing" ? "missing" : e.kind === "too-large" ? "too-large" : "unreadable";
    throw new TlsFileError(setting, file, kind, `${setting} ${file}: ${reason}`, e.cause ?? e);
  }
}

function pemBlocks(text: string): PemBlock[] {
  return [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)].map((m) => ({ label: m[1] as string, text: m[0] }));
}

function certificateBlocks(setting: TlsSetting, file: string, text: string): PemBlock[] {
  const all = pemBlocks(text);
  const certs = all.filter((b) => b.label === "CERTIFICATE");
  if (certs.length > 0) return certs;
  const hint =
    text.length === 0
      ? "empty file"
      : all.some((b) => b.label.endsWith("PRIVATE KEY"))
        ? `holds a private key, not a certificate${setting === "tls_cert" ? " (tls_cert and tls_key swapped?)" : ""}`
        : text.charCodeAt(0) === 0x30
          ? `not a PEM certificate (looks like DER: convert with "openssl x509 -inform der -in ${file}")`
          : `not a PEM certificate (no "-----BEGIN CERTIFICATE-----")`;
  throw new TlsFileError(setting, file, "not-pem", `${setting} ${file}: ${hint}`);
}

function parseCertificate(setting: TlsSetting, file: string, b: PemBlock, i: number, n: number): X509Certificate {
  try {
    return new X509Certificate(b.text);
  } catch (e) {
    throw new TlsFileError(setting, file, "invalid", `${setting} ${file}: certificate ${i + 1} of ${n} does not parse (damaged base64 or DER)`, e);
  }
}

function parseKey(file: string, text: string): { block: PemBlock; object: KeyObject } {
  const all = pemBlocks(text);
  const keys = all.filter((b) => b.label.endsWith("PRIVATE KEY"));
  if (keys.length === 0) {
    const hint =
      text.length === 0
        ? "empty file"
        : all.some((b) => b.label === "CERTIFICATE")
          ? "holds a certificate, not a private key (tls_cert and tls_key swapped?)"
          : `no private key (no "-----BEGIN PRIVATE KEY-----")`;
    throw new TlsFileError("tls_key", file, "no-key", `tls_key ${file}: ${hint}`);
  }
  if (keys.length > 1) throw new TlsFileError("tls_key", file, "invalid", `tls_key ${file}: holds ${keys.length} private keys; keep one`);
  const block = keys[0] as PemBlock;
  const encrypted = () =>
    new TlsFileError("tls_key", file, "encrypted", `tls_key ${file}: the key is encrypted and nsproxy takes no passphrase; decrypt it with "openssl pkey -in ${file}"`);
  // PKCS#8 says so in its label, the traditional OpenSSL format in a "Proc-Type: 4,ENCRYPTED" header.
  if (block.label === "ENCRYPTED PRIVATE KEY" || /^Proc-Type:\s*4,ENCRYPTED/m.test(block.text)) throw encrypted();
  try {
    return { block, object: createPrivateKey(block.text) };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ERR_MISSING_PASSPHRASE") throw encrypted();
    throw new TlsFileError("tls_key", file, "invalid", `tls_key ${file}: private key does not parse (damaged base64 or DER, or an unsupported type)`, e);
  }
}

/** `validToDate` is newer than `validTo` (Node 23, Deno 2.7); the string form is "Dec  9 22:38:50 2026 GMT". */
function validityDate(date: Date | undefined, text: string): Date {
  return date instanceof Date ? date : new Date(text);
}

/** "DNS:a.example, IP Address:10.0.0.1"; a value holding a comma or quote arrives JSON-quoted (Node's fix for CVE-2021-44532). */
function altNames(san: string | undefined): string[] {
  if (!san) return [];
  const names: string[] = [];
  for (const m of san.matchAll(/(?:^|, )(DNS|IP Address):("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const value = m[2] as string;
    names.push(value.startsWith('"') ? (JSON.parse(value) as string) : value);
  }
  return names;
}

function day(d: Date): string {
  return d.toISOString().slice(0, 10);
}
