// The demo: two throwaway namespaces with identical addresses, one host upstream, dist/nsproxy between them; and the
// other direction (ingress): one host listener reaching each tenant's own service at the same address in its namespace.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";

const BINARY = `${import.meta.dir}/../dist/nsproxy`;
const tag = `nsdemo-${process.pid}`;
const tenants = [`${tag}-acme`, `${tag}-globex`];
let proxy: ReturnType<typeof Bun.spawn> | undefined;
const services: ReturnType<typeof Bun.spawn>[] = [];
// Its own admin socket and tenants dir: the demo never touches /run/nsproxy or /etc/nsproxy, nor a real daemon.
const scratch = mkdtempSync(`${tmpdir()}/nsproxy-demo-`);

function sh(argv: string[]): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.trim() || `exit ${r.status}`}`);
  return r.stdout;
}

function cleanup(): void {
  proxy?.kill("SIGKILL");
  for (const p of services) p.kill("SIGKILL");
  for (const ns of tenants) spawnSync("ip", ["netns", "del", ns]);
  rmSync(scratch, { recursive: true, force: true });
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(130));

if (process.getuid?.() !== 0) {
  console.error("the demo creates network namespaces: run it as root (sudo npm run demo)");
  process.exit(2);
}

// The host upstream: answers with the tenant stamp nsproxy put on the request.
const upstream = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch: (req) => new Response(`hello ${req.headers.get("x-nsproxy-tenant")}, from the host upstream (you are ${req.headers.get("x-forwarded-for")} inside your namespace)\n`),
});

for (const ns of tenants) {
  sh(["ip", "netns", "add", ns]);
  sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
  // Both tenants get the same extra address: their address spaces collide, as they do in real life.
  sh(["ip", "-n", ns, "addr", "add", "10.0.0.1/24", "dev", "lo"]);
}

// Each tenant's own service, at the same address inside its own namespace (for the ingress direction).
for (const ns of tenants) {
  const code = `Bun.serve({ hostname: "127.0.0.1", port: 3000, fetch: (r) => new Response("hello from ${ns}'s own service on 127.0.0.1:3000 in its namespace (for " + r.headers.get("x-forwarded-for") + ")\\n") }); setTimeout(() => process.exit(0), 60000);`;
  services.push(Bun.spawn(["ip", "netns", "exec", ns, process.execPath, "-e", code], { stdout: "ignore", stderr: "inherit" }));
}
const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
const ingressPort = probe.port;
probe.stop(true);

const args = [
  "run", "--listen", "127.0.0.1:8080", "--listen", "10.0.0.1:80", "--upstream", `http://127.0.0.1:${upstream.port}`, ...tenants.flatMap((t) => ["--netns", t]),
  "--ingress-listen", `127.0.0.1:${ingressPort}`, "--ingress-host", "{tenant}.demo", "--ingress-backend", "127.0.0.1:3000",
  "--admin-socket", `${scratch}/admin.sock`, "--tenants-dir", `${scratch}/tenants.d`,
];
console.log(`$ nsproxy ${args.join(" ")}`);
proxy = Bun.spawn([BINARY, ...args], { stdout: "inherit", stderr: "pipe" });

// Wait for the startup summary, echoing the proxy's log as it comes.
const reader = proxy.stderr.getReader();
let log = "";
while (!log.includes("attached")) {
  const { value, done } = await reader.read();
  if (done) throw new Error(`nsproxy exited early:\n${log}`);
  const text = new TextDecoder().decode(value);
  log += text;
  process.stderr.write(text);
}

for (const ns of tenants) {
  for (const url of ["http://127.0.0.1:8080/", "http://10.0.0.1/"]) {
    const r = Bun.spawn(["ip", "netns", "exec", ns, "curl", "-sS", "-H", "X-Nsproxy-Tenant: forged", url], { stdout: "pipe", stderr: "pipe" });
    const out = await new Response(r.stdout).text();
    await r.exited;
    console.log(`[${ns}] curl -H 'X-Nsproxy-Tenant: forged' ${url}\n  -> ${out.trim()}`);
  }
}

// Ingress: from the host, the Host header picks the tenant whose own 127.0.0.1:3000 answers.
await Bun.sleep(500); // the services in the namespaces have had time to start
for (const ns of tenants) {
  const r = Bun.spawn(["curl", "-sS", "-H", `Host: ${ns}.demo`, `http://127.0.0.1:${ingressPort}/`], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(r.stdout).text();
  await r.exited;
  console.log(`[host] curl -H 'Host: ${ns}.demo' http://127.0.0.1:${ingressPort}/\n  -> ${out.trim()}`);
}

proxy.kill("SIGTERM");
await proxy.exited;
upstream.stop(true);
console.log("done: each tenant got its own stamp on the same addresses; the forged header was replaced; from the host, each Host reached its own tenant's service. Namespaces removed.");
process.exit(0);
