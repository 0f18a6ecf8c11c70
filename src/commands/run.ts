// `nsproxy run`: start the workers, attach every tenant, serve until SIGTERM/SIGINT.
import { defineCommand } from "citty";
import { loadConfig } from "../config/load.ts";
import { Daemon } from "../daemon.ts";
import { ConfigError } from "../errors.ts";
import { configureLogger, logger } from "../log.ts";
import { ensureWindowSafeRuntime } from "../runtime.ts";
import { VERSION } from "../version.ts";
import { configArgs, flagOverrides, NO_TENANTS, rejectUnknownFlags, runtimeArgs } from "./args.ts";

const args = { ...configArgs, ...runtimeArgs };

export default defineCommand({
  meta: { name: "run", description: "Listen inside every tenant's network namespace and proxy to the upstream" },
  args,
  async run({ args: parsed, rawArgs }) {
    rejectUnknownFlags(rawArgs, args);
    ensureWindowSafeRuntime();
    const config = loadConfig({ file: parsed.config, flags: flagOverrides(parsed, rawArgs) });
    configureLogger({ format: config.logFormat, verbose: Boolean(parsed.verbose) });
    if (config.tenants.length === 0) {
      throw new ConfigError(NO_TENANTS);
    }
    if (process.getuid?.() !== 0) logger.warn("not running as root: entering other network namespaces will likely fail (EPERM)");

    const daemon = new Daemon(config);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        logger.warn(`${signal} again: exiting now`);
        process.exit(1);
      }
      stopping = true;
      logger.info(`${signal}: no longer accepting; waiting up to ${config.shutdownGraceMs / 1000} s for requests in flight`);
      daemon.stop().then(
        () => {
          logger.info("stopped");
          process.exit(0);
        },
        (err) => {
          logger.error(`shutdown: ${err.message}`);
          process.exit(1);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));

    logger.info(`nsproxy ${VERSION}: ${config.tenants.length} tenant(s), ${config.workers} worker(s), pid ${process.pid}`);
    const { attached, total, ms } = await daemon.start();
    const failed = total - attached;
    logger.info(`attached ${attached}/${total} tenants on ${config.workers} workers in ${Math.round(ms)} ms; ${failed} failed`);
    // Serve until a signal: the workers and timers keep the process alive.
    await new Promise<never>(() => {});
  },
});
