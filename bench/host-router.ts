// HostRouter.route() cost with 10,000 tenants, per kind of Host (no sockets): ns per route.
// Usage: bun bench/host-router.ts [rounds]
import { fullRouter, TENANTS } from "../test/helpers/host-routes.ts";

const rounds = Number(process.argv[2] ?? 200_000);
const { router, kinds } = fullRouter();
const rows: string[] = [];
let sink = 0;
for (const { what, hosts } of kinds) {
  for (let k = 0; k < 20_000; k++) sink += router.route(hosts[k % hosts.length]!)?.value ?? 0; // warm-up
  const t0 = Bun.nanoseconds();
  for (let k = 0; k < rounds; k++) sink += router.route(hosts[k % hosts.length]!)?.value ?? 0;
  const ns = (Bun.nanoseconds() - t0) / rounds;
  rows.push(`  ${what.padEnd(36)} ${ns.toFixed(0).padStart(5)} ns/route`);
}
console.log(`HostRouter.route() with ${TENANTS} tenants × 2 patterns (${rounds} routes per kind; checksum ${sink}):\n${rows.join("\n")}`);
