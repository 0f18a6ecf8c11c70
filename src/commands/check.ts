// `nsproxy check`: validate a configuration and look at its namespaces without serving anything.
import { defineCommand } from "citty";
import { loadConfig, summarize } from "../config/load.ts";
import { configureLogger, logger } from "../log.ts";
import { closeFd, NativeError, openNetns } from "../netns/native.ts";
import { adminArgs, configArgs, flagOverrides, rejectUnknownFlags, runtimeArgs } from "./args.ts";

const args = { ...configArgs, ...adminArgs, ...runtimeArgs };

export default defineCommand({
  meta: { name: "check", description: "Validate the configuration (file and flags), open each namespace, print a summary" },
  args,
  run({ args: parsed, rawArgs }) {
    rejectUnknownFlags(rawArgs, args);
    const config = loadConfig({ file: parsed.config, flags: flagOverrides(parsed, rawArgs) });
    configureLogger({ format: config.logFormat, verbose: Boolean(parsed.verbose) });
    for (const line of summarize(config)) process.stdout.write(`${line}\n`);
    // A missing namespace is not a configuration error: at run time the tenant waits for it.
    let missing = 0;
    for (const t of config.tenants) {
      try {
        closeFd(openNetns(t.netns));
      } catch (err) {
        missing++;
        logger.warn(`tenant ${t.name}: ${err instanceof NativeError ? err.message : String(err)} (it will be retried at run time)`);
      }
    }
    process.stdout.write(`configuration ok${config.file ? `: ${config.file}` : ""}; ${config.tenants.length - missing}/${config.tenants.length} namespaces open now\n`);
  },
});
