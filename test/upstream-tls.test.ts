// An https:// upstream on real namespaces: the certificate is verified (a self-signed one is a 502 naming why), and a trusted one carries the stamp.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { makeCa, makeLeaf } from "./helpers/certs.ts";
import { daemonDir, startNsproxy, UNDER_DENO } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, curlIn, skipReason, uniquePrefix } from "./helpers/netns.ts";

const prefix = uniquePrefix("tls");
const haveOpenssl = Bun.spawnSync(["sh", "-c", "command -v openssl"]).exitCode === 0;

describe.skipIf(Boolean(skipReason) || !haveOpenssl)("https upstream", () => {
  let dir: string;
  let upstream: ReturnType<typeof Bun.serve>;
  /** What NODE_EXTRA_CA_CERTS trusts. */
  let trusted: string;

  beforeAll(() => {
    dir = daemonDir();
    const r = Bun.spawnSync(
      ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
      { stderr: "pipe" },
    );
    if (r.exitCode !== 0) throw new Error(`openssl: ${r.stderr.toString()}`);
    let served = { cert: `${dir}/cert.pem`, key: `${dir}/key.pem` };
    trusted = `${dir}/cert.pem`;
    if (UNDER_DENO) {
      // Deno (rustls) refuses a CA certificate as a server's own, trusted or not (CaUsedAsEndEntity): the
      // upstream serves a leaf signed by a CA, and NODE_EXTRA_CA_CERTS trusts the CA.
      const ca = makeCa(`${dir}/ca`);
      served = makeLeaf(ca, `${dir}/leaf`, "127.0.0.1");
      trusted = ca.cert;
    }
    upstream = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: Bun.file(served.cert), key: Bun.file(served.key) },
      fetch: (req) => new Response(`over tls for ${req.headers.get("x-nsproxy-tenant")}\n`),
    });
  });

  afterAll(() => {
    upstream?.stop(true);
    cleanupNetns(prefix);
  });

  test("a certificate that does not verify: 502 naming the TLS error", async () => {
    const ns = addNetns(`${prefix}a`);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8180", "-u", `https://127.0.0.1:${upstream.port}`, "-n", ns, "-w", "1"]);
    try {
      await d.waitFor("attached 1/1");
      const r = await curlIn(ns, "http://127.0.0.1:8180/x");
      expect(r.status).toBe(502);
      const why = UNDER_DENO ? "invalid peer certificate: UnknownIssuer" : "DEPTH_ZERO_SELF_SIGNED_CERT"; // rustls's words, or OpenSSL's
      expect(r.body).toBe(`nsproxy: upstream https://127.0.0.1:${upstream.port}: TLS: ${why}\n`);
    } finally {
      await d.stop("SIGKILL");
    }
  });

  test("a trusted certificate (NODE_EXTRA_CA_CERTS): the request goes over TLS with the stamp", async () => {
    const ns = addNetns(`${prefix}b`);
    const d = startNsproxy(["run", "-l", "127.0.0.1:8181", "-u", `https://127.0.0.1:${upstream.port}`, "-n", ns, "-w", "1"], {
      env: { NODE_EXTRA_CA_CERTS: trusted },
    });
    try {
      await d.waitFor("attached 1/1");
      const r = await curlIn(ns, "http://127.0.0.1:8181/x");
      expect(r.status).toBe(200);
      expect(r.body).toBe(`over tls for ${ns}\n`);
    } finally {
      await d.stop("SIGKILL");
    }
  });

  test("upstream_ca adds a CA (the default roots stay); upstream_insecure skips verification and says so once at start", async () => {
    const ns = addNetns(`${prefix}c`);
    const file = `${dir}/c.toml`;
    await Bun.write(
      file,
      `[tenants.withca]\nnetns = "${ns}"\nlisten = "127.0.0.1:8182"\nupstream = "https://127.0.0.1:${upstream.port}"\nupstream_ca = "${trusted}"\n` +
        `[tenants.insecure]\nnetns = "${ns}"\nlisten = "127.0.0.1:8183"\nupstream = "https://127.0.0.1:${upstream.port}"\nupstream_insecure = true\n` +
        `[tenants.badca]\nnetns = "${ns}"\nlisten = "127.0.0.1:8184"\nupstream = "https://127.0.0.1:${upstream.port}"\nupstream_ca = "${dir}/missing-ca.pem"\n`,
    );
    const d = startNsproxy(["run", "-c", file, "-w", "1"]);
    try {
      await d.waitFor("attached 2/3");
      for (const port of [8182, 8183]) {
        const r = await curlIn(ns, `http://127.0.0.1:${port}/x`);
        expect({ port, status: r.status, body: r.body }).toEqual({ port, status: 200, body: `over tls for ${port === 8182 ? "withca" : "insecure"}\n` });
      }
      expect(d.stderr().match(/upstream_insecure = true/g)?.length).toBe(1);
      expect(d.stderr()).toContain("tenant insecure");
      // A CA file that cannot be read fails that tenant alone, naming the file.
      expect(d.stderr()).toMatch(/tenant badca .*upstream_ca .*missing-ca\.pem/);
    } finally {
      await d.stop("SIGKILL");
    }
  });
});
