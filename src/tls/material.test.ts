// Unit tests for reading certificate and key files, on certificates this file makes with openssl (no network).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { NsproxyError } from "../errors.ts";
import { describeExpiry, expiryWarning, keyMatches, loadCa, loadKeyPair, MAX_FILE_BYTES, TlsFileError } from "./material.ts";

const haveOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "pipe" });
    return true;
  } catch {
    return false;
  }
})();

const DAY = 86_400_000;
let dir = "";
const f = (name: string) => `${dir}/${name}`;
const read = (name: string) => readFileSync(f(name), "utf8");
const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" }).toString();
const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/** OpenSSL 3.0 has no -not_before/-not_after on req or x509 (3.4 added them); `openssl ca` takes any dates. */
function signWithDates(csr: string, out: string, start: string, end: string): void {
  mkdirSync(f("db"), { recursive: true });
  writeFileSync(f("db/index.txt"), "");
  writeFileSync(f("db/serial"), "01\n");
  writeFileSync(
    f("ca.cnf"),
    "[ca]\ndefault_ca = t\n[t]\ndatabase = db/index.txt\nnew_certs_dir = db\nserial = db/serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n",
  );
  openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key", "-in", csr, "-out", out, "-startdate", start, "-enddate", end, "-notext");
}

function failure(fn: () => unknown): TlsFileError {
  try {
    fn();
  } catch (e) {
    if (e instanceof TlsFileError) return e;
    throw e;
  }
  throw new Error("expected a TlsFileError, nothing was thrown");
}

describe.skipIf(!haveOpenssl)("certificate and key files", () => {
  beforeAll(() => {
    dir = mkdtempSync(`${tmpdir()}/nsproxy-tls-material-`);
    openssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "30", "-subj", "/CN=nsproxy test CA");
    openssl("req", "-new", ...ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=acme.test/O=Acme");
    writeFileSync(f("san.cnf"), "subjectAltName=DNS:acme.test,DNS:*.acme.test,IP:169.254.169.254\n");
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-days", "30", "-extfile", "san.cnf", "-out", "leaf.crt");
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-days", "5", "-out", "soon.crt");
    signWithDates("leaf.csr", "expired.crt", "20201001000000Z", "20201101000000Z");
    signWithDates("leaf.csr", "future.crt", "20990101000000Z", "20991231000000Z");
    writeFileSync(f("chain.crt"), read("leaf.crt") + read("ca.crt"));
    writeFileSync(f("reversed.crt"), read("ca.crt") + read("leaf.crt"));
    writeFileSync(f("combined.pem"), read("leaf.key") + read("leaf.crt"));
    const addext = ["-addext", "subjectAltName=DNS:self.test,IP:127.0.0.1"];
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "self.key", "-out", "self.crt", "-days", "30", "-subj", "/CN=self.test", ...addext);
    openssl("pkey", "-in", "leaf.key", "-aes256", "-passout", "pass:secret", "-out", "pkcs8-encrypted.key");
    openssl("ec", "-in", "leaf.key", "-aes256", "-passout", "pass:secret", "-out", "traditional-encrypted.key");
    openssl("x509", "-in", "leaf.crt", "-outform", "der", "-out", "leaf.der");
    const pem = read("leaf.crt");
    writeFileSync(f("damaged.crt"), pem.slice(0, 100) + "!!!!" + pem.slice(104));
    writeFileSync(f("text.crt"), "this is not a certificate\n");
    writeFileSync(f("empty.crt"), "");
    writeFileSync(f("huge.crt"), Buffer.alloc(MAX_FILE_BYTES + 1, "A"));
    mkdirSync(f("a-directory.crt"));
    execFileSync("mkfifo", [f("fifo.crt")]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("a CA-signed chain: the whole chain for the listener, the leaf described", () => {
    const p = loadKeyPair(f("chain.crt"), f("leaf.key"));
    expect(p.cert).toBe(read("chain.crt"));
    expect(p.cert.match(/-----BEGIN CERTIFICATE-----/g)).toHaveLength(2);
    expect(p.key).toBe(read("leaf.key"));
    expect(p.subject).toBe("CN=acme.test, O=Acme");
    expect(p.names).toEqual(["acme.test", "*.acme.test", "169.254.169.254"]);
    expect(`sha256 Fingerprint=${p.fingerprint}\n`).toBe(openssl("x509", "-in", "leaf.crt", "-noout", "-fingerprint", "-sha256"));
    expect(p.notAfter.getTime() - p.notBefore.getTime()).toBe(30 * DAY);
    expect(expiryWarning(p)).toBeUndefined();
  });

  test("a self-signed RSA pair, and one file holding both key and certificate", () => {
    const self = loadKeyPair(f("self.crt"), f("self.key"));
    expect(self.names).toEqual(["self.test", "127.0.0.1"]);
    const both = loadKeyPair(f("combined.pem"), f("combined.pem"));
    expect(both.cert).toBe(read("leaf.crt"));
    expect(both.key).toBe(read("leaf.key"));
  });

  test("a key that does not match, and a chain with the leaf not first", () => {
    const e = failure(() => loadKeyPair(f("self.crt"), f("leaf.key")));
    expect([e.kind, e.setting, e.file]).toEqual(["mismatch", "tls_key", f("leaf.key")]);
    expect(e.message).toBe(`tls_key ${f("leaf.key")} does not match certificate ${f("self.crt")}`);
    const r = failure(() => loadKeyPair(f("reversed.crt"), f("leaf.key")));
    expect([r.kind, r.setting]).toEqual(["mismatch", "tls_cert"]);
    expect(r.message).toBe(
      `tls_cert ${f("reversed.crt")}: the certificate for key ${f("leaf.key")} is number 2 in the file; the leaf must come first, then intermediates`,
    );
  });

  test("files that are not PEM certificates say what they are", () => {
    const cases: [string, string][] = [
      ["text.crt", `not a PEM certificate (no "-----BEGIN CERTIFICATE-----")`],
      ["leaf.der", `not a PEM certificate (looks like DER: convert with "openssl x509 -inform der -in ${f("leaf.der")}")`],
      ["empty.crt", "empty file"],
      ["leaf.key", "holds a private key, not a certificate (tls_cert and tls_key swapped?)"],
    ];
    for (const [name, reason] of cases) {
      const e = failure(() => loadKeyPair(f(name), f("leaf.key")));
      expect([e.kind, e.message]).toEqual(["not-pem", `tls_cert ${f(name)}: ${reason}`]);
    }
    const damaged = failure(() => loadKeyPair(f("damaged.crt"), f("leaf.key")));
    expect([damaged.kind, damaged.message]).toEqual(["invalid", `tls_cert ${f("damaged.crt")}: certificate 1 of 1 does not parse (damaged base64 or DER)`]);
  });

  test("a key file without a key", () => {
    const e = failure(() => loadKeyPair(f("leaf.crt"), f("leaf.crt") + ".nope"));
    expect([e.kind, e.message]).toEqual(["missing", `tls_key ${f("leaf.crt")}.nope: no such file`]);
    const swapped = failure(() => loadKeyPair(f("leaf.crt"), f("ca.crt")));
    expect([swapped.kind, swapped.message]).toEqual(["no-key", `tls_key ${f("ca.crt")}: holds a certificate, not a private key (tls_cert and tls_key swapped?)`]);
    const text = failure(() => loadKeyPair(f("leaf.crt"), f("text.crt")));
    expect(text.message).toBe(`tls_key ${f("text.crt")}: no private key (no "-----BEGIN PRIVATE KEY-----")`);
  });

  // Tests run as root, which chmod 000 does not stop: unreadable is shown with a directory and missing paths.
  test("missing, unreadable and oversized files", () => {
    const cases: [string, string, string][] = [
      [f("nope.crt"), "missing", "no such file"],
      [f("text.crt/x.crt"), "missing", "no such file (a parent is not a directory)"],
      [f("a-directory.crt"), "unreadable", "is a directory"],
      [f("fifo.crt"), "unreadable", "a FIFO, not a regular file"], // and open() did not wait for a writer
      [f("huge.crt"), "too-large", `larger than ${MAX_FILE_BYTES} bytes, not a certificate or key file`],
    ];
    for (const [file, kind, reason] of cases) {
      const e = failure(() => loadKeyPair(file, f("leaf.key")));
      expect([e.kind, e.file, e.message]).toEqual([kind, file, `tls_cert ${file}: ${reason}`]);
    }
  });

  test("expired and not yet valid, by the certificate's dates and by the clock", () => {
    const e = failure(() => loadKeyPair(f("expired.crt"), f("leaf.key")));
    expect([e.kind, e.message]).toEqual(["expired", `tls_cert ${f("expired.crt")} expired on 2020-11-01 (not after 2020-11-01T00:00:00.000Z)`]);
    const later = failure(() => loadKeyPair(f("leaf.crt"), f("leaf.key"), new Date(Date.now() + 40 * DAY)));
    expect(later.kind).toBe("expired");
    const n = failure(() => loadKeyPair(f("future.crt"), f("leaf.key")));
    expect([n.kind, n.message]).toEqual(["not-yet-valid", `tls_cert ${f("future.crt")} is not valid yet (not before 2099-01-01T00:00:00.000Z)`]);
    // A clock a minute behind the issuer's does not refuse a certificate issued this second.
    const p = loadKeyPair(f("leaf.crt"), f("leaf.key"));
    expect(loadKeyPair(f("leaf.crt"), f("leaf.key"), new Date(p.notBefore.getTime() - 60_000)).fingerprint).toBe(p.fingerprint);
  });

  test("expiring within 14 days warns; describeExpiry counts whole days", () => {
    const soon = loadKeyPair(f("soon.crt"), f("leaf.key"));
    expect(expiryWarning(soon)).toMatch(new RegExp(`^tls_cert ${f("soon.crt")} expires on \\d{4}-\\d\\d-\\d\\d, in 4 days \\(not after `));
    const p = loadKeyPair(f("leaf.crt"), f("leaf.key"));
    const at = (daysBefore: number) => new Date(p.notAfter.getTime() - daysBefore * DAY);
    const end = `${p.notAfter.toISOString().slice(0, 10)}`;
    expect(expiryWarning(p, at(14))).toBeUndefined();
    expect(expiryWarning(p, at(13.5))).toBe(`tls_cert ${f("leaf.crt")} expires on ${end}, in 13 days (not after ${p.notAfter.toISOString()})`);
    expect(expiryWarning(p, at(1))).toBe(`tls_cert ${f("leaf.crt")} expires on ${end}, in 1 day (not after ${p.notAfter.toISOString()})`);
    expect(expiryWarning(p, at(0.5))).toBe(`tls_cert ${f("leaf.crt")} expires on ${end}, within a day (not after ${p.notAfter.toISOString()})`);
    expect(expiryWarning(p, at(-1))).toBe(`tls_cert ${f("leaf.crt")} expired on ${end} (not after ${p.notAfter.toISOString()})`);
    expect(expiryWarning(p, at(20), 30)).toContain("in 20 days");
    expect(describeExpiry(p, at(10.5))).toEqual({ notAfter: p.notAfter.toISOString(), daysLeft: 10 });
    expect(describeExpiry(p, at(-0.5)).daysLeft).toBe(-1);
  });

  test("encrypted keys are refused: nsproxy takes no passphrase", () => {
    for (const name of ["pkcs8-encrypted.key", "traditional-encrypted.key"]) {
      const e = failure(() => loadKeyPair(f("leaf.crt"), f(name)));
      expect([e.kind, e.message]).toEqual([
        "encrypted",
        `tls_key ${f(name)}: the key is encrypted and nsproxy takes no passphrase; decrypt it with "openssl pkey -in ${f(name)}"`,
      ]);
    }
  });

  test("a CA file: every certificate, checked", () => {
    writeFileSync(f("bundle.pem"), read("ca.crt") + read("self.crt"));
    expect(loadCa(f("bundle.pem"))).toBe(read("bundle.pem"));
    const key = failure(() => loadCa(f("leaf.key")));
    expect([key.kind, key.setting, key.message]).toEqual(["not-pem", "upstream_ca", `upstream_ca ${f("leaf.key")}: holds a private key, not a certificate`]);
    writeFileSync(f("bundle-damaged.pem"), read("ca.crt") + read("damaged.crt"));
    expect(failure(() => loadCa(f("bundle-damaged.pem"))).message).toBe(
      `upstream_ca ${f("bundle-damaged.pem")}: certificate 2 of 2 does not parse (damaged base64 or DER)`,
    );
    expect(failure(() => loadCa(f("nope.pem"))).message).toBe(`upstream_ca ${f("nope.pem")}: no such file`);
  });

  test("errors are configuration errors (exit 2) carried to the edge like every other", () => {
    const e = failure(() => loadKeyPair(f("nope.crt"), f("leaf.key")));
    expect(e).toBeInstanceOf(NsproxyError);
    expect(e.exitCode).toBe(2);
    expect((e.cause as NodeJS.ErrnoException).code).toBe("ENOENT");
  });

  test("the key match works without X509Certificate.checkPrivateKey (Deno before 2.7)", () => {
    const withoutCheck = (file: string) => {
      const stub = {
        checkPrivateKey: () => {
          throw new Error("Not implemented: crypto.X509Certificate.prototype.checkPrivateKey");
        },
        publicKey: new X509Certificate(read(file)).publicKey,
      };
      return stub as unknown as X509Certificate;
    };
    expect(keyMatches(withoutCheck("leaf.crt"), createPrivateKey(read("leaf.key")))).toBe(true);
    expect(keyMatches(withoutCheck("self.crt"), createPrivateKey(read("leaf.key")))).toBe(false);
    expect(keyMatches(withoutCheck("self.crt"), createPrivateKey(read("self.key")))).toBe(true);
  });
});
