// `nsproxy tenant add|rm|ls`: change a running daemon's tenants through its admin socket, or the tenants directory when it is not running.
import { defineCommand } from "citty";
import { AdminClient, DaemonNotRunning } from "../admin/client.ts";
import type { TenantInput, TenantView } from "../admin/types.ts";
import { Invalid } from "../config/layer.ts";
import { checkTenantTable } from "../config/tenant-table.ts";
import { TENANT_SETTINGS } from "../config/settings.ts";
import { badTenantName, isValidTenantName, parseListen } from "../config/values.ts";
import { unreachableListens } from "../netns/reachable.ts";
import { ConfigError } from "../errors.ts";
import { removeTenantFile, tenantFilePath, writeTenantFile } from "../store/tenants-dir.ts";
import { clientArgs, collect, daemonPaths, flagValue, rejectUnknownFlags, settingArgs } from "./args.ts";

const nameArg = { name: { type: "positional", description: "Tenant name: 1-64 letters, digits, '.', '_' or '-'" } } as const;

const addArgs = {
  ...nameArg,
  netns: { type: "string", alias: "n", description: "The tenant's namespace (required): NAME (/run/netns/NAME), a path, or /proc/PID/ns/net", valueHint: "REF" },
  header: { type: "string", alias: "H", description: "Static header added upstream, NAME=VALUE (repeatable)", valueHint: "NAME=VALUE" },
  ...settingArgs(TENANT_SETTINGS),
  ...clientArgs,
} as const;

/** Where each key of a tenant table comes from on this command line, for errors. */
const FLAG_OF: Record<string, string> = {
  netns: "--netns",
  headers: "--header",
  ...Object.fromEntries(TENANT_SETTINGS.map((s) => [s.key, `--${s.flag}`])),
};

const add = defineCommand({
  meta: { name: "add", description: "Add or replace a tenant (idempotent); stored in the tenants directory" },
  args: addArgs,
  async run({ args, rawArgs }) {
    checkArgs(rawArgs, addArgs, 1);
    const name = tenantName(args.name);
    const input = tenantInput(name, args, rawArgs);
    const { socket, tenantsDir } = daemonPaths(args);
    try {
      const { result, tenant } = await new AdminClient(socket).putTenant(name, input);
      print(`tenant ${name}: ${result}${stateNote(tenant)}`);
    } catch (e) {
      if (!(e instanceof DaemonNotRunning)) throw e;
      const { file, changed } = writeTenantFile(tenantsDir, name, input as unknown as Record<string, unknown>);
      print(`${e.message}; ${changed ? `saved ${file} (applies at the next start)` : `unchanged ${file}`}`);
    }
  },
});

const rmArgs = { ...nameArg, ...clientArgs } as const;

const rm = defineCommand({
  meta: { name: "rm", description: "Remove a tenant (idempotent: an absent tenant is not an error)" },
  args: rmArgs,
  async run({ args, rawArgs }) {
    checkArgs(rawArgs, rmArgs, 1);
    const name = tenantName(args.name);
    const paths = daemonPaths(args);
    try {
      const removed = await new AdminClient(paths.socket).deleteTenant(name);
      print(removed ? `tenant ${name}: removed` : `tenant ${name}: absent (nothing to remove)`);
    } catch (e) {
      if (!(e instanceof DaemonNotRunning)) throw e;
      const dir = paths.tenantsDir;
      const removed = removeTenantFile(dir, name);
      print(`${e.message}; ${removed ? `removed ${tenantFilePath(dir, name)}` : `no file for ${name} in ${dir}`}`);
    }
  },
});

const lsArgs = { json: { type: "boolean", description: "Print the tenants as a JSON array" }, ...clientArgs } as const;

const ls = defineCommand({
  meta: { name: "ls", description: "List the running daemon's tenants and their state" },
  args: lsArgs,
  async run({ args, rawArgs }) {
    checkArgs(rawArgs, lsArgs, 0);
    const tenants = withWarnings(await new AdminClient(daemonPaths(args).socket).tenants());
    if (args.json) return print(JSON.stringify(tenants, null, 2));
    if (tenants.length === 0) return print("no tenants");
    // An ingress-only tenant has no listener of its own: its hosts take that column.
    const listen = (t: TenantView) => [...t.listen, ...(t.ingress ? [`ingress:${t.ingress.hosts.join(",")}`] : [])].join(",");
    const upstream = (t: TenantView) => t.upstream || (t.ingress ? `-> ${[t.ingress.backend, t.ingress.tls_backend].filter(Boolean).join(",")} (in netns)` : "");
    const rows = tenants.map((t) => [t.name, t.state, t.netns, listen(t), upstream(t), t.error ?? t.ingress?.down ?? t.tls?.error ?? (t.warning ? `warning: ${t.warning}` : "")]);
    for (const line of alignColumns([["NAME", "STATE", "NETNS", "LISTEN", "UPSTREAM", "ERROR"], ...rows])) print(line);
  },
});

/**
 * A serving tenant whose listen address is on a down interface in its namespace (a new `ip netns add` has lo
 * down) binds, and no client there connects: `warning` says so. Looked at here, when asked, by a route lookup
 * inside the namespace; the daemon's workers never do more than create sockets there.
 */
function withWarnings(tenants: TenantView[]): (TenantView & { warning?: string })[] {
  return tenants.map((t) => {
    if (t.state !== "serving") return t;
    const warnings = unreachableListens(t.netns, t.listen.map((l) => parseListen(l)));
    return warnings.length ? { ...t, warning: warnings.join("; ") } : t;
  });
}

export default defineCommand({
  meta: { name: "tenant", description: "Add, remove or list tenants of a running daemon (or its tenants directory)" },
  subCommands: { add, rm, ls },
});

/** The TenantInput the flags describe, checked with the rules of a [tenants.NAME] table; errors name the flag. */
function tenantInput(name: string, args: Record<string, unknown>, rawArgs: string[]): TenantInput {
  const netns = collect(rawArgs, "netns", "n");
  if (netns.length === 0) throw new ConfigError(`needs the tenant's namespace, like "--netns ${name}" or "--netns /proc/1234/ns/net"`, "--netns");
  if (netns.length > 1) throw new ConfigError("given more than once; a tenant has one namespace", "--netns");
  const ref = netns[0]!;
  if (/^[^/]*=/.test(ref)) {
    throw new ConfigError(`${JSON.stringify(ref)}: the TENANT=REF form is for "nsproxy run"; here NAME is the tenant, give only the namespace, like "--netns ${ref.slice(ref.indexOf("=") + 1)}"`, "--netns");
  }
  const input: TenantInput = { netns: ref };
  const headers = collect(rawArgs, "header", "H");
  if (headers.length) input.headers = headerTable(headers);
  const list = (flag: string, alias?: string) => {
    const values = collect(rawArgs, flag, alias);
    return values.length ? values : undefined;
  };
  for (const s of TENANT_SETTINGS) {
    const v = flagValue(s, args, rawArgs, list);
    if (v === undefined) continue;
    // Stored as a file would hold it (upstream_timeout = 30, max_connections = 50); a value refused here names the flag.
    try {
      (input as Record<string, unknown>)[s.key] = s.kind.stored(v as never, s.key);
    } catch (e) {
      throw new ConfigError(e instanceof Error ? e.message : String(e), `--${s.flag}`);
    }
  }
  try {
    checkTenantTable(name, input);
  } catch (e) {
    if (!(e instanceof Invalid)) throw e;
    const key = Array.isArray(e.at) ? e.at[0] : undefined;
    throw new ConfigError(e.message, key ? (FLAG_OF[key] ?? key) : undefined);
  }
  return input;
}

function headerTable(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new ConfigError(`${JSON.stringify(pair)} is not NAME=VALUE, like "X-Plan=gold"`, "--header");
    const name = pair.slice(0, eq);
    if (Object.hasOwn(out, name)) throw new ConfigError(`header '${name}' is given twice`, "--header");
    out[name] = pair.slice(eq + 1);
  }
  return out;
}

function tenantName(name: string | undefined): string {
  if (!name) throw new ConfigError("needs the tenant's NAME (see --help)");
  if (!isValidTenantName(name)) throw new ConfigError(badTenantName(name, "(the NAME argument)"));
  return name;
}

function stateNote(t: TenantView): string {
  return t.state === "serving" ? "" : ` (${t.state}${t.error ? `: ${t.error}` : ""})`;
}

/** rejectUnknownFlags knows no positional arguments: give it the rest, and refuse more positionals than the command takes. */
function checkArgs(rawArgs: string[], defs: Record<string, { type: string; alias?: string }>, positionals: number): void {
  const flagDefs = Object.fromEntries(Object.entries(defs).filter(([, d]) => d.type !== "positional"));
  const valued = new Set(Object.entries(flagDefs).flatMap(([name, d]) => (d.type === "string" ? [`--${name}`, ...(d.alias ? [`-${d.alias}`] : [])] : [])));
  const flags: string[] = [];
  const words: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === "--") {
      words.push(...rawArgs.slice(i + 1));
      break;
    }
    if (!a.startsWith("-")) {
      words.push(a);
      continue;
    }
    flags.push(a);
    const next = rawArgs[i + 1];
    if (!a.includes("=") && valued.has(a) && next !== undefined && !next.startsWith("-")) flags.push(rawArgs[++i]!);
  }
  rejectUnknownFlags(flags, flagDefs);
  const extra = words[positionals];
  if (extra !== undefined) throw new ConfigError(`unexpected argument '${extra}' (see --help)`);
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
function alignColumns(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd());
}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}
