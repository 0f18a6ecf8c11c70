// `nsproxy check`: validate a configuration and look at its namespaces without serving anything.
import { defineCommand } from "citty";
import { loadLayered, summarize } from "../config/load.ts";
import { ConfigError, EXIT, NsproxyError } from "../errors.ts";
import { readStoredTenants } from "../control/desired.ts";
import { configureLogger, logger } from "../log.ts";
import { ownCapsIfReadable, privilegeProblem } from "../netns/caps.ts";
import { closeFd, NativeError, openNetns } from "../netns/native.ts";
import { unreachableListens } from "../netns/reachable.ts";
import { useLibDir } from "../privilege/lib-dir.ts";
import { namespaceDirs, privatePropagationWarnings } from "../privilege/mounts.ts";
import type { TenantSpec } from "../config/types.ts";
import { expiryWarning, loadCa, loadKeyPair } from "../tls/material.ts";
import { adminArgs, configArgs, flagOverrides, rejectUnknownFlags, runtimeArgs } from "./args.ts";

const args = { ...configArgs, ...adminArgs, ...runtimeArgs };

/**
 * Every certificate, key and CA file read as run would read it. Unreadable, not PEM, a key that does not
 * match, an expired certificate: an error naming the tenant and the file (every one is printed, the
 * first is the exit's). Expiring within 14 days: a warning. Files shared by tenants are read once.
 */
function checkCertificates(tenants: TenantSpec[]): void {
  const errors: string[] = [];
  const seen = new Map<string, string | undefined>();
  const once = (id: string, read: () => void): string | undefined => {
    if (!seen.has(id)) {
      try {
        read();
        seen.set(id, undefined);
      } catch (err) {
        seen.set(id, (err as Error).message);
      }
    }
    return seen.get(id);
  };
  let pairs = 0;
  for (const t of tenants) {
    if (t.tls) {
      const { cert, key } = t.tls;
      const error = once(`${cert}\0${key}`, () => {
        const pair = loadKeyPair(cert, key);
        pairs++;
        const warning = expiryWarning(pair);
        if (warning) logger.warn(`tenant ${t.name}: ${warning}`);
      });
      if (error) errors.push(`tenant ${t.name}: ${error}`);
    }
    if (t.upstreamCa) {
      const ca = t.upstreamCa;
      const error = once(`ca\0${ca}`, () => void loadCa(ca));
      if (error) errors.push(`tenant ${t.name}: ${error}`);
    }
  }
  if (errors.length) {
    for (const e of errors.slice(1)) logger.error(e);
    throw new ConfigError(errors[0]!);
  }
  if (pairs) process.stdout.write(`certificates: ${pairs} pair(s) read, each key matches its certificate\n`);
}

export default defineCommand({
  meta: { name: "check", description: "Validate the configuration (file, flags, tenants directory), open each namespace, print a summary" },
  args,
  run({ args: parsed, rawArgs }) {
    rejectUnknownFlags(rawArgs, args);
    const loaded = loadLayered({ file: parsed.config, flags: flagOverrides(parsed, rawArgs) });
    const { config } = loaded;
    configureLogger({ format: config.logFormat, verbose: Boolean(parsed.verbose) });
    for (const line of summarize(config)) process.stdout.write(`${line}\n`);
    if (config.libDir) useLibDir(config.libDir);
    for (const w of privatePropagationWarnings(namespaceDirs(config))) logger.warn(`mount namespace: ${w}`);
    // The tenants directory as run would read it: a file run would skip is an error here.
    const { stored, skipped } = readStoredTenants(loaded);
    if (stored.size) process.stdout.write(`tenants dir ${config.tenantsDir}: ${stored.size} tenant(s): ${[...stored.keys()].join(", ")}\n`);
    if (skipped.length) {
      for (const s of skipped.slice(1)) logger.error(`${s.file}: ${s.error}`);
      throw new ConfigError(skipped[0]!.error.startsWith(skipped[0]!.file) ? skipped[0]!.error : `${skipped[0]!.file}: ${skipped[0]!.error}`);
    }
    checkCertificates([...config.tenants, ...stored.values()]);
    // What run would refuse at start is refused here too, after everything the file and flags could get wrong.
    const cannot = privilegeProblem(ownCapsIfReadable());
    if (cannot) throw new NsproxyError(`${cannot}; the configuration itself is valid, but run would exit here`, { exitCode: EXIT.usage });
    // A missing namespace is not a configuration error: at run time the tenant waits for it.
    let missing = 0;
    for (const t of [...config.tenants, ...stored.values()]) {
      try {
        closeFd(openNetns(t.netns));
      } catch (err) {
        if (err instanceof NsproxyError) throw err; // the C library itself cannot be loaded: not the namespace's fault
        missing++;
        logger.warn(`tenant ${t.name}: ${err instanceof NativeError ? err.message : String(err)} (it will be retried at run time)`);
        continue;
      }
      for (const w of unreachableListens(t.netns, t.listen)) logger.warn(`tenant ${t.name}: ${w}`);
    }
    if (config.tenants.length + stored.size === 0 && config.discover.length === 0) {
      process.stdout.write(`no tenants yet: run starts and waits for them (nsproxy tenant add, --discover, or a reload)\n`);
    }
    process.stdout.write(`configuration ok${config.file ? `: ${config.file}` : ""}; ${config.tenants.length + stored.size - missing}/${config.tenants.length + stored.size} namespaces open now\n`);
  },
});
