// `nsproxy reload`: make the running daemon read its configuration and tenants directory again (as SIGHUP does).
import { defineCommand } from "citty";
import { AdminClient } from "../admin/client.ts";
import type { ReloadResult } from "../admin/types.ts";
import { clientArgs, daemonPaths, rejectUnknownFlags } from "./args.ts";

const args = { json: { type: "boolean", description: "Print the reload result as JSON" }, ...clientArgs } as const;

/** Names listed per category; --json has them all. */
const MAX_NAMES = 10;

export default defineCommand({
  meta: { name: "reload", description: "Re-read the configuration and tenants directory of the running daemon, as SIGHUP does" },
  args,
  async run({ args: parsed, rawArgs }) {
    rejectUnknownFlags(rawArgs, args);
    // An invalid configuration comes back as a 400: its message, exit 2; the daemon keeps the old one.
    const result = await new AdminClient(daemonPaths(parsed).socket).reload();
    if (parsed.json) return print(JSON.stringify(result, null, 2));
    for (const line of describeReload(result)) print(line);
  },
});

export function describeReload(r: ReloadResult): string[] {
  const names = (list: string[]) =>
    list.length === 0 ? "" : ` (${list.slice(0, MAX_NAMES).join(", ")}${list.length > MAX_NAMES ? `, and ${list.length - MAX_NAMES} more` : ""})`;
  const lines = [
    `reloaded: ${r.added.length} added${names(r.added)}, ${r.removed.length} removed${names(r.removed)}, ` +
      `${r.replaced.length} replaced${names(r.replaced)}, ${r.unchanged} unchanged`,
  ];
  if (r.skipped.length) lines.push(`${r.skipped.length} tenants-dir file(s) skipped:`);
  // Each error already names its file (and line).
  for (const s of r.skipped) lines.push(`  ${s.error.startsWith(s.file) ? s.error : `${s.file}: ${s.error}`}`);
  return lines;
}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}
