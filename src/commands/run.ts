// `nsproxy run`: start the workers and the admin interface, attach every tenant, follow changes until SIGTERM/SIGINT.
import { defineCommand } from "citty";
import { serveAdmin } from "../admin/socket.ts";
import { createAdminApp } from "../admin/server.ts";
import { loadLayered } from "../config/load.ts";
import { Daemon } from "../control/daemon.ts";
import { configureLogger, logger } from "../log.ts";
import { runtime } from "../runtime/index.ts";
import { settlePrivileges } from "../privilege/drop.ts";
import { namespaceDirs, privatePropagationWarnings } from "../privilege/mounts.ts";
import { VERSION } from "../version.ts";
import { createMetricsApp } from "../metrics/http.ts";
import { adminArgs, configArgs, flagOverrides, rejectUnknownFlags, runtimeArgs } from "./args.ts";

const args = { ...configArgs, ...adminArgs, ...runtimeArgs };

export default defineCommand({
  meta: { name: "run", description: "Listen inside every tenant's network namespace and proxy to the upstream; tenants may change while it runs" },
  args,
  async run({ args: parsed, rawArgs }) {
    rejectUnknownFlags(rawArgs, args);
    const loadOptions = { file: parsed.config, flags: flagOverrides(parsed, rawArgs) };
    const loaded = loadLayered(loadOptions);
    const { config } = loaded;
    configureLogger({ format: config.logFormat, verbose: Boolean(parsed.verbose) });
    // The user and capabilities to run with, and the window-safe re-exec: before any thread of ours starts.
    settlePrivileges(loaded);
    for (const w of privatePropagationWarnings(namespaceDirs(config))) logger.warn(`mount namespace: ${w}`);

    const t0 = performance.now();
    const daemon = new Daemon(config, loadOptions, loaded);
    // The admin socket first: a second daemon on the same socket must stop before it binds anything.
    const admin = await serveAdmin(config.adminSocket, createAdminApp(daemon.admin));
    // The metrics listener next, in the host namespace (this thread never enters another): /readyz
    // says 503 until the start-up attach pass is done.
    if (config.metrics.listen) {
      const { host, port, text } = config.metrics.listen;
      const app = createMetricsApp({ metrics: () => daemon.admin.metrics(), ready: () => daemon.ready });
      try {
        // Served until exit: while shutting down, /readyz answers 503.
        runtime.serveHttp({ hostname: host, port }, (req) => app.fetch(req));
      } catch (err) {
        logger.error(`metrics listener ${text}: ${(err as Error).message}`);
        process.exit(1);
      }
      logger.info(`metrics on http://${text}/metrics (and /healthz, /readyz), host namespace only`);
    }

    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        logger.warn(`${signal} again: exiting now`);
        process.exit(1);
      }
      stopping = true;
      daemon.ready = false;
      logger.info(`${signal}: no longer accepting; waiting up to ${config.shutdownGraceMs / 1000} s for requests in flight`);
      daemon.stopFollowing();
      Promise.all([admin.stop(), daemon.stop()]).then(
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
    // A daemon serving thousands of tenants does not exit on one unexpected rejection: it says so, loudly.
    process.on("unhandledRejection", (err) => logger.error(`unexpected error (please report): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`));
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGHUP", () => {
      logger.info("SIGHUP: reloading");
      daemon.admin.reload().catch(() => {}); // reload logs its own outcome, and keeps the old config on error
    });

    logger.info(`nsproxy ${VERSION}: pid ${process.pid}, ${config.workers} worker(s), admin socket ${config.adminSocket}, tenants dir ${config.tenantsDir}`);
    // Workers first: booting one needs descriptors too, and the attach pass opens namespace files (tried
    // overlapping the two: under a tight RLIMIT_NOFILE a worker could fail to load with EMFILE).
    await daemon.start();
    // Test hook (ignored by the release binary): hold the attach pass back, so /readyz can be seen at 503.
    const hold = Number(process.env.NSPROXY_COMPILED === "1" ? 0 : (process.env.NSPROXY_TEST_HOLD_ATTACH_MS ?? 0));
    if (hold > 0) await new Promise((resolve) => setTimeout(resolve, hold));
    await daemon.attachAll();
    // After the attach pass: bound before it, configured hosts would answer 404 "unknown" for a moment.
    if (config.ingressListen.length > 0) {
      // The ingress listeners are the host's own addresses: one that cannot be bound is the operator's to fix now.
      const failed = await daemon.listenIngress();
      if (failed) {
        logger.error(`ingress listener: ${failed.message}; stopping`);
        await daemon.stop();
        process.exit(1);
      }
      logger.info(`ingress on ${config.ingressListen.map((l) => (l.kind === "sni" ? l.text : `http://${l.text.replace(/^http:\/\//, "")}`)).join(", ")} (host namespace)`);
    }
    daemon.ready = true;
    const c = daemon.reconciler.counts();
    logger.info(`attached ${c.serving}/${c.total} tenants on ${config.workers} workers in ${Math.round(performance.now() - t0)} ms; ${c.total - c.serving} failed`);
    warnIfOutOfDescriptors(daemon, config.workers);
    if (c.total === 0) logger.info(`waiting for tenants: nsproxy tenant add NAME --netns REF --admin-socket ${config.adminSocket}`);
    daemon.follow();
    // Serve until a signal: the workers, the admin socket and the timers keep the process alive.
    await new Promise<never>(() => {});
  },
});

/** Say what the descriptor limit allows, and warn before EMFILE does, with the way out. */
function warnIfOutOfDescriptors(daemon: Daemon, workers: number): void {
  const limit = daemon.fdLimit;
  let listeners = 0;
  let wanted = 0;
  for (const t of daemon.reconciler.tenants.values()) {
    listeners += t.spec.listen.length * daemon.pool.workersOf(t.spec.name);
    wanted += t.spec.listen.length;
  }
  if (limit >= Number.MAX_SAFE_INTEGER) return;
  logger.info(`descriptor limit ${limit} (RLIMIT_NOFILE, soft raised to hard): ${listeners} listeners open, the rest for connections (2 per client connection)`);
  if (wanted > limit - 512) {
    logger.warn(`${wanted} listen addresses need more descriptors than the limit ${limit} leaves: raise it (systemd LimitNOFILE=, ulimit -n) for all tenants to attach (${workers} workers)`);
  }
}
