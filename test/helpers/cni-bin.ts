// A CNI plugin directory as a runtime sees it: nsproxy under its plugin name (the binary, or the source under Deno) beside reference plugins.
import { chmodSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { daemonDir, ensureBuilt, SOURCE_CLI, UNDER_DENO } from "./daemon.ts";

/** Debian's containernetworking-plugins. */
export const REFERENCE_PLUGINS = "/usr/lib/cni";

/** Why the reference plugins named cannot be chained here, or undefined. */
export function missingReferencePlugins(...names: string[]): string | undefined {
  const lacking = names.filter((n) => !existsSync(`${REFERENCE_PLUGINS}/${n}`));
  return lacking.length ? `no ${lacking.map((n) => `${REFERENCE_PLUGINS}/${n}`).join(", ")} (apt-get install containernetworking-plugins)` : undefined;
}

/**
 * A fresh directory holding `nsproxy` (the built binary; in the Deno leg a wrapper that runs the source under Deno,
 * as the daemon runs) and links to the reference plugins named.
 */
export function nsproxyPluginDir(reference: string[] = []): string {
  const dir = `${daemonDir()}/cni-bin`;
  mkdirSync(dir);
  for (const n of reference) symlinkSync(`${REFERENCE_PLUGINS}/${n}`, `${dir}/${n}`);
  if (UNDER_DENO) {
    writeFileSync(`${dir}/nsproxy`, `#!/bin/sh\nexec ${SOURCE_CLI.map((a) => `'${a}'`).join(" ")}\n`);
    chmodSync(`${dir}/nsproxy`, 0o755);
  } else symlinkSync(ensureBuilt(), `${dir}/nsproxy`);
  return dir;
}
