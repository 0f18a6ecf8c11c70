// `nsproxy status`: what the running daemon reports about itself, from its admin socket.
import { defineCommand } from "citty";
import { AdminClient } from "../admin/client.ts";
import type { StatusView } from "../admin/types.ts";
import { clientArgs, daemonPaths, rejectUnknownFlags } from "./args.ts";

const args = { json: { type: "boolean", description: "Print the status as JSON" }, ...clientArgs } as const;

export default defineCommand({
  meta: { name: "status", description: "Show the running daemon's version, pid, uptime, workers, tenants by state and totals" },
  args,
  async run({ args: parsed, rawArgs }) {
    rejectUnknownFlags(rawArgs, args);
    const status = await new AdminClient(daemonPaths(parsed).socket).status();
    if (parsed.json) return print(JSON.stringify(status, null, 2));
    for (const line of describeStatus(status)) print(line);
  },
});

export function describeStatus(s: StatusView): string[] {
  const t = s.tenants;
  const lines = [
    `nsproxy ${s.version}, pid ${s.pid}, up ${formatUptime(s.uptime_seconds)}`,
    `workers:      ${s.workers}`,
    `config:       ${s.config ?? "(none)"}`,
    `tenants dir:  ${s.tenants_dir}`,
    `admin socket: ${s.admin_socket}`,
    `tenants:      ${t.total} (${t.serving} serving, ${t.waiting} waiting, ${t.failed} failed)`,
  ];
  // Absent from daemons that predate it; a figure the daemon could not read arrives as null (JSON has no NaN).
  if (s.last_upgrade) lines.push(`generation:   ${s.generation ?? "?"} (upgraded ${s.last_upgrade})`);
  const x = s.totals;
  const n = (v: number | null) => (typeof v === "number" && Number.isFinite(v) ? String(v) : "?");
  if (x) lines.push(`totals:       requests/s ${n(x.requests_per_second)}, open connections ${n(x.open_connections)}${x.ingress_connections ? ` (${n(x.ingress_connections)} ingress)` : ""}, descriptors ${n(x.descriptors_open)}/${n(x.descriptors_limit)}`);
  return lines;
}

/** 93784 → "1d 2h 3m 4s", leading zero units dropped. */
export function formatUptime(seconds: number): string {
  let rest = Math.max(0, Math.floor(seconds));
  const parts: string[] = [];
  for (const [unit, size] of [["d", 86_400], ["h", 3_600], ["m", 60]] as const) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0 || parts.length > 0) parts.push(`${n}${unit}`);
  }
  parts.push(`${rest}s`);
  return parts.join(" ");
}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}
