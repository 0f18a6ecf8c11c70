// Installing the plugin on a node: the binary copied into the CNI bin directory, its entry chained into the first conflist (as istio-cni does).
import { copyFileSync, chmodSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NsproxyError } from "../errors.ts";
import { CniError, readNetConf } from "./protocol.ts";

/** The plugin's name in a conflist and in the CNI bin directory. */
export const PLUGIN_TYPE = "nsproxy";

type Conflist = { plugins?: unknown[] } & Record<string, unknown>;

const isOurs = (p: unknown) => typeof p === "object" && p !== null && (p as { type?: unknown }).type === PLUGIN_TYPE;

/** `conflist` with `entry` last in its chain (replacing an entry of ours that is there); null when it already is exactly so. */
export function withPlugin(conflist: Conflist, entry: Record<string, unknown>): Conflist | null {
  if (!Array.isArray(conflist.plugins)) throw new NsproxyError(`not a conflist: no "plugins" array`);
  const others = conflist.plugins.filter((p) => !isOurs(p));
  const next = { ...conflist, plugins: [...others, { ...entry, type: PLUGIN_TYPE }] };
  return JSON.stringify(next) === JSON.stringify(conflist) ? null : next;
}

/** `conflist` without our entry; null when it has none. */
export function withoutPlugin(conflist: Conflist): Conflist | null {
  if (!Array.isArray(conflist.plugins) || !conflist.plugins.some(isOurs)) return null;
  return { ...conflist, plugins: conflist.plugins.filter((p) => !isOurs(p)) };
}

/** The conflist the runtime uses: the first *.conflist by name, as containerd, CRI-O and the kubelet pick it. */
export function primaryConflist(confDir: string): string | undefined {
  let names: string[];
  try {
    names = readdirSync(confDir);
  } catch (e) {
    throw new NsproxyError(`cannot read the CNI config directory ${confDir}: ${(e as Error).message}`);
  }
  const first = names.filter((n) => n.endsWith(".conflist") && !n.startsWith(".")).sort()[0];
  return first === undefined ? undefined : join(confDir, first);
}

/** Write next to the file and rename over it: the runtime reads the conflist at any moment and must never see half of it. */
function replaceFile(file: string, text: string, mode: number): void {
  const tmp = join(file, `../.${PLUGIN_TYPE}-${process.pid}.tmp`);
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, file);
}

export interface InstallOptions {
  binary: string;
  binDir: string;
  confDir: string;
  /** The plugin's conflist entry, without type (adminSocket, failOpen, tenant). */
  entry: Record<string, unknown>;
}

/** Check the entry as the plugin will read it at ADD: a bad one is refused now, on the node, not at every pod. */
export function checkEntry(entry: Record<string, unknown>, cniVersion = "1.0.0"): void {
  try {
    readNetConf(JSON.stringify({ cniVersion, name: "check", ...entry, type: PLUGIN_TYPE }));
  } catch (e) {
    if (e instanceof CniError) throw new NsproxyError(`plugin conf: ${e.message}`, { exitCode: 2 });
    throw e;
  }
}

/** Copy the binary (when it differs) and chain the entry into the primary conflist. Returns what it did, for the log. */
export function installOnce(o: InstallOptions): string[] {
  const done: string[] = [];
  const target = join(o.binDir, PLUGIN_TYPE);
  const src = statSync(o.binary);
  const dst = existsSync(target) ? statSync(target) : undefined;
  if (!dst || dst.size !== src.size || dst.mtimeMs < src.mtimeMs) {
    const tmp = join(o.binDir, `.${PLUGIN_TYPE}-${process.pid}.tmp`);
    copyFileSync(o.binary, tmp);
    chmodSync(tmp, 0o755);
    renameSync(tmp, target);
    done.push(`copied ${o.binary} to ${target}`);
  }
  const file = primaryConflist(o.confDir);
  if (!file) throw new NsproxyError(`no *.conflist in ${o.confDir} yet: the cluster's network plugin writes one; nsproxy chains after it`);
  const conflist = JSON.parse(readFileSync(file, "utf8")) as Conflist;
  checkEntry(o.entry, typeof conflist.cniVersion === "string" ? conflist.cniVersion : undefined);
  const next = withPlugin(conflist, o.entry);
  if (next) {
    replaceFile(file, `${JSON.stringify(next, null, 2)}\n`, statSync(file).mode & 0o777);
    done.push(`chained ${PLUGIN_TYPE} into ${file}`);
  }
  return done;
}

/** Take the entry out of every conflist that has it, and remove the binary. */
export function uninstall(binDir: string, confDir: string): string[] {
  const done: string[] = [];
  for (const name of readdirSync(confDir).filter((n) => n.endsWith(".conflist")).sort()) {
    const file = join(confDir, name);
    const next = withoutPlugin(JSON.parse(readFileSync(file, "utf8")) as Conflist);
    if (!next) continue;
    replaceFile(file, `${JSON.stringify(next, null, 2)}\n`, statSync(file).mode & 0o777);
    done.push(`removed ${PLUGIN_TYPE} from ${file}`);
  }
  const target = join(binDir, PLUGIN_TYPE);
  if (existsSync(target)) {
    rmSync(target);
    done.push(`removed ${target}`);
  }
  return done;
}
