// Arguments shared by several commands, and the strictness citty leaves to us: repeated flags and unknown flags.
import { ConfigError } from "../errors.ts";
import { resolve } from "node:path";
import { type FlagOverrides, loadLayered } from "../config/load.ts";
import { suggest } from "../config/suggest.ts";
import { camel, DAEMON_SETTINGS, DEFAULT_ADMIN_SOCKET, DEFAULT_TENANTS_DIR, SETTINGS, type Setting, TENANT_SETTINGS } from "../config/settings.ts";

interface FlagDef {
  type: "string" | "boolean";
  alias?: string;
  description: string;
  valueHint?: string;
}

/** citty's definitions of the settings' flags, in the table's order. */
export function settingArgs<S extends readonly Setting[]>(settings: S): { [E in S[number] as E["flag"]]: FlagDef } {
  const out: Record<string, FlagDef> = {};
  for (const s of settings) {
    out[s.flag] = {
      type: s.kind.flagType === "boolean" ? "boolean" : "string",
      ...(s.alias ? { alias: s.alias } : {}),
      description: s.help,
      ...(s.hint ? { valueHint: s.hint } : {}),
    };
  }
  return out as { [E in S[number] as E["flag"]]: FlagDef };
}

const ADMIN_KEYS = ["admin_socket", "tenants_dir"];

export const configArgs = {
  config: { type: "string", alias: "c", description: "TOML config file ([daemon], [defaults], [tenants.NAME])", valueHint: "FILE" },
  netns: { type: "string", alias: "n", description: "Tenant namespace: NAME (/run/netns/NAME), a path, /proc/PID/ns/net, or TENANT=REF (repeatable)", valueHint: "REF" },
  ...settingArgs(TENANT_SETTINGS),
} as const;

/** Where the daemon keeps runtime tenants and answers admin requests; shared with the tenant/status/reload commands. */
export const adminArgs = settingArgs(ADMIN_KEYS.map((k) => DAEMON_SETTINGS.find((s) => s.key === k)!)) as Record<"admin-socket" | "tenants-dir", FlagDef>;

/** For the commands that talk to a daemon: where it is, possibly read from its config file. */
export const clientArgs = {
  config: { type: "string", alias: "c", description: "Config file whose [daemon] admin_socket and tenants_dir to use (flags win)", valueHint: "FILE" },
  ...adminArgs,
} as const;

export const runtimeArgs = {
  discover: { type: "string", description: "Serve every namespace file in DIR matching GLOB (default *) as a tenant named after it; docker[:SOCKET]: containers labelled nsproxy.enable=true, named after them (repeatable)", valueHint: "DIR[=GLOB]|docker[:SOCKET]" },
  ...settingArgs(DAEMON_SETTINGS.filter((s) => !ADMIN_KEYS.includes(s.key))),
  verbose: { type: "boolean", alias: "v", description: "Debug logging, and stack traces on errors" },
} as const;

const REPEATABLE = new Set(["netns", "discover", "header", ...SETTINGS.filter((s) => s.kind.flagType === "list").map((s) => s.flag)]);

/** Every value of a repeatable flag (`--listen a --listen b`, `--listen=a`, `-l a`); citty keeps only the last. */
export function collect(rawArgs: string[], name: string, alias?: string): string[] {
  const out: string[] = [];
  const long = `--${name}`;
  const short = alias ? `-${alias}` : undefined;
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === "--") break;
    if (a === long || a === short) {
      const v = rawArgs[i + 1];
      if (v === undefined || v.startsWith("-")) throw new ConfigError(`needs a value`, long);
      out.push(v);
      i++;
    } else if (a.startsWith(`${long}=`)) out.push(a.slice(long.length + 1));
  }
  return out;
}

/** citty ignores flags it does not know; a typo'd flag must never be silent. Throws a usage error. */
export function rejectUnknownFlags(rawArgs: string[], defs: Record<string, { type: string; alias?: string }>): void {
  const known = new Map<string, string>();
  for (const [name, def] of Object.entries(defs)) {
    known.set(`--${name}`, def.type);
    if (def.type === "boolean") known.set(`--no-${name}`, "boolean");
    if (def.alias) known.set(`-${def.alias}`, def.type);
  }
  const seen = new Set<string>();
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === "--") break;
    if (!a.startsWith("-")) {
      const hint = a.endsWith(".toml") ? `; did you mean --config ${a}?` : "";
      throw new ConfigError(`unexpected argument '${a}'${hint} (see --help)`);
    }
    const flag = a.includes("=") ? a.slice(0, a.indexOf("=")) : a;
    const type = known.get(flag);
    if (!type) throw new ConfigError(`unknown option${didYouMean(flag, known)} (see --help)`, flag);
    const canonical = canonicalName(flag, defs);
    if (!REPEATABLE.has(canonical) && seen.has(canonical)) throw new ConfigError(`given more than once; only --listen, --netns, --discover, --header, --ingress-listen and --ingress-host repeat`, flag);
    seen.add(canonical);
    if (type === "string" && !a.includes("=")) {
      const name = flag.replace(/^-+/, "");
      if (!REPEATABLE.has(name) && (rawArgs[i + 1] === undefined || rawArgs[i + 1]!.startsWith("-"))) {
        throw new ConfigError(`needs a value`, flag);
      }
      i++;
    }
  }
}

/** The command line's share of the configuration; undefined where a flag was not given, so the file can speak. */
export function flagOverrides(args: Record<string, unknown>, rawArgs: string[]): FlagOverrides {
  const out: Record<string, unknown> = {};
  const list = (flag: string, alias?: string) => {
    const values = collect(rawArgs, flag, alias);
    return values.length ? values : undefined;
  };
  out.netns = list("netns", "n");
  out.discover = list("discover");
  for (const s of SETTINGS) out[camel(s.flag)] = flagValue(s, args, rawArgs, list);
  return out as FlagOverrides;
}

/** One setting's flag as given: a string, every value of a repeatable flag, or a switch (--x / --no-x); else undefined. */
export function flagValue(s: Setting, args: Record<string, unknown>, rawArgs: string[], list: (flag: string, alias?: string) => string[] | undefined): unknown {
  if (s.kind.flagType === "list") return list(s.flag, s.alias);
  if (s.kind.flagType === "boolean") return rawArgs.includes(`--no-${s.flag}`) ? false : rawArgs.includes(`--${s.flag}`) ? true : undefined;
  return typeof args[s.flag] === "string" ? args[s.flag] : undefined;
}

/** "; did you mean --listen?" for a long flag a typo away from one this command takes; short flags are too short to guess. */
function didYouMean(flag: string, known: Map<string, string>): string {
  if (!flag.startsWith("--")) return "";
  const near = suggest(flag.slice(2), [...known.keys()].filter((k) => k.startsWith("--")).map((k) => k.slice(2)));
  return near ? `; did you mean --${near}?` : "";
}

function canonicalName(flag: string, defs: Record<string, { alias?: string }>): string {
  const bare = flag.replace(/^-+/, "").replace(/^no-/, "");
  for (const [name, def] of Object.entries(defs)) if (name === bare || def.alias === bare) return name;
  return bare;
}

/**
 * The admin socket and tenants directory a command talks to: its flags, else the config file's
 * [daemon] table (when --config is given), else the defaults. Relative paths become absolute.
 */
export function daemonPaths(args: Record<string, unknown>): { socket: string; tenantsDir: string } {
  const str = (k: string) => (typeof args[k] === "string" ? (args[k] as string) : undefined);
  let socket = str("admin-socket");
  let tenantsDir = str("tenants-dir");
  const file = str("config");
  if (file && (!socket || !tenantsDir)) {
    const { config } = loadLayered({ file });
    socket ??= config.adminSocket;
    tenantsDir ??= config.tenantsDir;
  }
  return { socket: resolve(socket ?? DEFAULT_ADMIN_SOCKET), tenantsDir: resolve(tenantsDir ?? DEFAULT_TENANTS_DIR) };
}
