// Failures a client or an operator would otherwise meet in silence reach the daemon's log, at most once per tenant
// per 10 s when a tenant can cause them at any rate: a rejected `nsproxy reload`, a TCP-mode upstream that refuses,
// and plain HTTP sent to an https:// listener (at --verbose).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { type Ca, haveOpenssl, makeCa, makeLeaf } from "./helpers/certs.ts";
import { daemonDir, runNsproxy, startNsproxy, UNDER_DENO } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, nsExec, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { freePort } from "./helpers/ports.ts";
import { startUpstream } from "./helpers/upstream.ts";

const prefix = uniquePrefix("flog");

/** The daemon's own admin socket and tenants dir. */
function place(): string[] {
  const dir = daemonDir();
  return ["--admin-socket", `${dir}/admin/admin.sock`, "--tenants-dir", `${dir}/tenants.d`];
}

/**
 * `n` connections, one after the other, from inside `ns` (curl: each sends a request and waits for the close).
 * Returns how many lines a once-per-10-s limit allows for them: 1, or more when a loaded machine took longer.
 */
async function connections(ns: string, url: string, n: number): Promise<number> {
  const t0 = Date.now();
  await nsExec(ns, ["sh", "-c", `i=0; while [ $i -lt ${n} ]; do curl -s --max-time 3 -o /dev/null ${url}; i=$((i+1)); done`], 60_000);
  return 1 + Math.floor((Date.now() - t0) / 10_000);
}

const count = (text: string, part: string) => text.split(part).length - 1;

describe.skipIf(Boolean(skipReason))("failures that are logged", () => {
  afterAll(() => cleanupNetns(prefix));

  test("a rejected `nsproxy reload` is logged by the daemon, the same line as a rejected SIGHUP", async () => {
    const upstream = startUpstream();
    const ns = addNetns(`${prefix}rl`);
    const flags = place();
    const file = `${daemonDir()}/nsproxy.toml`;
    const good = ["[defaults]", 'listen = "127.0.0.1:8170"', `upstream = "http://127.0.0.1:${upstream.port}"`, "[tenants.rl]", `netns = "${ns}"`].join("\n");
    writeFileSync(file, `${good}\n`);
    const d = startNsproxy(["run", "-w", "1", "--config", file, "--no-access-log", ...flags]);
    try {
      await d.waitFor("attached 1/1");
      writeFileSync(file, `${good}\nlisten_typo = "x"\n`);
      const line = `error reload rejected, the running configuration stays: ${file}:6: `;
      const bad = await runNsproxy(["reload", ...flags]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain("reload rejected, the running configuration stays");
      // The daemon's log has it too, before any SIGHUP: the operator reading the journal sees what the caller saw.
      await d.waitFor(line);
      expect(count(d.stderr(), line)).toBe(1);
      d.proc.kill("SIGHUP");
      await d.waitFor(/SIGHUP: reloading\n.*reload rejected/);
      expect(count(d.stderr(), line)).toBe(2);
    } finally {
      await d.stop("SIGKILL");
      upstream.stop(true);
    }
  }, 60_000);

  test("TCP mode: an upstream that refuses is logged once per tenant per 10 s, naming it, however many connections fail", async () => {
    const [a, b] = [addNetns(`${prefix}ta`), addNetns(`${prefix}tb`)];
    // A port nothing listens on: every connect is refused.
    const closed = freePort();
    const flags = place();
    const file = `${daemonDir()}/nsproxy.toml`;
    writeFileSync(
      file,
      [
        "[defaults]",
        'mode = "tcp"',
        'listen = "127.0.0.1:5440"',
        `upstream = "tcp://127.0.0.1:${closed}"`,
        "[tenants.ta]",
        `netns = "${a}"`,
        "[tenants.tb]",
        `netns = "${b}"`,
        "",
      ].join("\n"),
    );
    const d = startNsproxy(["run", "-w", "1", "--config", file, ...flags]);
    try {
      await d.waitFor("attached 2/2");
      const [allowA, allowB] = await Promise.all([connections(a, "http://127.0.0.1:5440/", 20), connections(b, "http://127.0.0.1:5440/", 5)]);
      const line = (t: string) => `warn  worker 0: tenant ${t}: upstream tcp://127.0.0.1:${closed}: connection refused; the client's connection was closed (counted in nsproxy_tenant_upstream_connect_failures_total; logged at most every 10 s per tenant)`;
      await d.waitFor(line("ta"));
      await d.waitFor(line("tb"));
      await Bun.sleep(200);
      expect(count(d.stderr(), "tenant ta: upstream")).toBeLessThanOrEqual(allowA!);
      expect(count(d.stderr(), "tenant tb: upstream")).toBeLessThanOrEqual(allowB!);
      // Every refusal is counted.
      const metrics = await (await fetch("http://nsproxy/metrics", { unix: flags[1]! })).text();
      expect(Number(metrics.match(/^nsproxy_tenant_upstream_connect_failures_total\{tenant="ta"\} (\d+)/m)?.[1])).toBe(20);
      expect(Number(metrics.match(/^nsproxy_tenant_upstream_connect_failures_total\{tenant="tb"\} (\d+)/m)?.[1])).toBe(5);
    } finally {
      await d.stop("SIGKILL");
    }
  }, 90_000);

  describe.skipIf(!haveOpenssl)("https:// listeners", () => {
    let ca: Ca;
    let dir: string;
    beforeAll(() => {
      dir = daemonDir();
      ca = makeCa(`${dir}/ca`);
    });

    test("plain HTTP to an https:// listener: at --verbose one debug line per tenant per 10 s saying it was not TLS, even after a certificate refusal", async () => {
      const upstream = startUpstream();
      const ns = addNetns(`${prefix}hs`);
      mkdirSync(`${dir}/hs`);
      makeLeaf(ca, `${dir}/hs/pair`, "hs");
      const tls = ["--tls-cert", `${dir}/hs/pair.crt`, "--tls-key", `${dir}/hs/pair.key`];
      const d = startNsproxy(["run", "-w", "1", "-v", "-l", "https://127.0.0.1:8453", "-u", `http://127.0.0.1:${upstream.port}`, ...tls, "-n", ns, ...place()]);
      try {
        await d.waitFor("attached 1/1");
        // First a TLS client that refuses the certificate: its line must not hide the plain-HTTP ones after it.
        await nsExec(ns, ["curl", "-sS", "--max-time", "3", "-o", "/dev/null", "https://127.0.0.1:8453/"]);
        await d.waitFor(`tenant ${ns}: TLS handshake failed (client 127.0.0.1): `);
        const allow = await connections(ns, "http://127.0.0.1:8453/", 10);
        // Bun's TLS library recognises the HTTP method; Deno's can only tell the bytes are not TLS.
        const why = UNDER_DENO
          ? "the client's first bytes are not TLS: plain HTTP or another protocol (received corrupt message of type InvalidContentType)"
          : "the client sent plain HTTP (HTTP_REQUEST)";
        const line = `debug worker 0: tenant ${ns}: TLS handshake failed (client 127.0.0.1): ${why}; counted in nsproxy_tenant_tls_handshake_failures_total`;
        await d.waitFor(line);
        await Bun.sleep(200);
        expect(count(d.stderr(), "TLS handshake failed")).toBeLessThanOrEqual(allow + 1);
        expect(count(d.stderr(), line)).toBeLessThanOrEqual(allow);
      } finally {
        await d.stop("SIGKILL");
        upstream.stop(true);
      }
    }, 60_000);
  });
});
