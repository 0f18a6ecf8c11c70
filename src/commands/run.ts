// `nsproxy run`: start the workers and the admin interface, attach every tenant, follow changes until SIGTERM/SIGINT.
import { defineCommand, type ParsedArgs } from "citty";
import { type AdminServer, type PendingAdminServer, serveAdmin, serveAdminBeside } from "../admin/socket.ts";
import { createAdminApp } from "../admin/server.ts";
import { loadLayered } from "../config/load.ts";
import type { DaemonConfig } from "../config/types.ts";
import { Daemon } from "../control/daemon.ts";
import { sdNotify } from "../control/sd-notify.ts";
import { heldOnlyBy, lostTenants, type Predecessor, predecessor, report, servingBefore, sharedWith, socketInodes } from "../control/successor.ts";
import { EXIT, NsproxyError } from "../errors.ts";
import { probeAloneRaw } from "../netns/native.ts";
import { configureLogger, logger } from "../log.ts";
import { ownCapsIfReadable, privilegeProblem } from "../netns/caps.ts";
import { installSyscallFilter } from "../netns/seccomp.ts";
import { type HttpServer, runtime } from "../runtime/index.ts";
import { settlePrivileges } from "../privilege/drop.ts";
import { namespaceDirs, privatePropagationWarnings } from "../privilege/mounts.ts";
import { VERSION } from "../version.ts";
import { createMetricsApp } from "../metrics/http.ts";
import { adminArgs, configArgs, flagOverrides, rejectUnknownFlags, runtimeArgs } from "./args.ts";

const args = { ...configArgs, ...adminArgs, ...runtimeArgs };

const command = defineCommand({
  meta: { name: "run", description: "Listen inside every tenant's network namespace and proxy to the upstream; tenants may change while it runs" },
  args,
  async run({ args: parsed, rawArgs }) {
    // Started by `nsproxy upgrade`: whatever stops this start is the upgrade's error, told to the daemon that
    // stays (a flag the running daemon was started with and this version no longer knows, too).
    const pred = predecessor();
    if (!pred) {
      rejectUnknownFlags(rawArgs, args);
      return serve(parsed, rawArgs);
    }
    try {
      rejectUnknownFlags(rawArgs, args);
      return await serve(parsed, rawArgs, pred);
    } catch (err) {
      await report(pred, { ready: false, message: (err as Error)?.message ?? String(err) });
      throw err;
    }
  },
});

async function serve(parsed: ParsedArgs<typeof args>, rawArgs: string[], pred?: Predecessor): Promise<never> {
  const loadOptions = { file: parsed.config, flags: flagOverrides(parsed, rawArgs) };
  const loaded = loadLayered(loadOptions);
  const { config } = loaded;
  configureLogger({ format: config.logFormat, verbose: Boolean(parsed.verbose) });
  // Before the admin socket and the workers: a daemon that can never attach a tenant stops here, tenants or not.
  const cannot = privilegeProblem(ownCapsIfReadable());
  if (cannot) throw new NsproxyError(cannot, { exitCode: EXIT.usage });
  // The user and capabilities to run with, and the window-safe re-exec: before any thread of ours starts.
  await settlePrivileges(loaded);
  for (const w of privatePropagationWarnings(namespaceDirs(config))) logger.warn(`mount namespace: ${w}`);
  // As early as the config allows: before the admin socket, the workers and any tenant's bytes; every thread
  // the runtime has is covered now (TSYNC), and every one it starts later inherits it.
  installSyscallFilter(config.seccomp);

  const t0 = performance.now();
  const daemon = new Daemon(config, loadOptions, loaded);
  // The admin socket first: a second daemon on the same socket must stop before it binds anything. A
  // successor binds beside the running daemon's and takes the path only once it serves (successor.ts).
  const pending = pred ? await serveAdminBeside(config.adminSocket, createAdminApp(daemon.admin), pred.adminSocket) : undefined;
  const admin = pending ?? (await serveAdmin(config.adminSocket, createAdminApp(daemon.admin)));
  daemon.handover.adminOwned = () => admin.owned();
  // The metrics listener next, in the host namespace (this thread never enters another): /readyz
  // says 503 until the start-up attach pass is done. A successor binds its own only once it serves
  // every tenant (takeOver): beside the old one before that, it would answer a probe 503 for a service
  // that is up.
  let metrics: HttpServer | undefined;
  if (!pred) metrics = await serveMetrics(config, daemon, admin);

  handleSignals(config, daemon, admin, () => metrics);

  logger.info(`nsproxy ${VERSION}: pid ${process.pid}, ${config.workers} worker(s), admin socket ${config.adminSocket}, tenants dir ${config.tenantsDir}`);
  // Workers first: booting one needs descriptors too, and the attach pass opens namespace files (tried
  // overlapping the two: under a tight RLIMIT_NOFILE a worker could fail to load with EMFILE).
  // A successor shares only the listeners the running daemon holds, and asks what it serves before attaching.
  const before = pred ? await servingBefore(pred.adminSocket) : undefined;
  if (pred) daemon.pool.handover = sharedWith(socketInodes(pred.pid));
  await daemon.start();
  // Test hook (ignored by the release binary): hold the attach pass back, so /readyz can be seen at 503.
  const hold = Number(process.env.NSPROXY_COMPILED === "1" ? 0 : (process.env.NSPROXY_TEST_HOLD_ATTACH_MS ?? 0));
  if (hold > 0) await new Promise((resolve) => setTimeout(resolve, hold));
  await daemon.attachAll();
  // After the attach pass: bound before it, configured hosts would answer 404 "unknown" for a moment.
  await listenIngress(config, daemon, admin);
  const c = daemon.reconciler.counts();
  logger.info(`attached ${c.serving}/${c.total} tenants on ${config.workers} workers in ${Math.round(performance.now() - t0)} ms; ${c.total - c.serving} failed`);
  if (pred && pending) metrics = await takeOver(daemon, pred, pending, before, () => serveMetrics(config, daemon, admin));
  daemon.ready = true;
  // Under systemd (Type=notify): ready; and a successor is the unit's main process from now on.
  sdNotify(pred ? { MAINPID: process.pid, READY: 1 } : { READY: 1 });
  warnIfOutOfDescriptors(daemon, config.workers);
  if (c.total === 0) logger.info(`waiting for tenants: nsproxy tenant add NAME --netns REF --admin-socket ${config.adminSocket}`);
  daemon.follow();
  // Serve until a signal: the workers, the admin socket and the timers keep the process alive.
  return await new Promise<never>(() => {});
}

export default command;

/**
 * SIGTERM/SIGINT drain and exit (a second one exits at once), SIGUSR2 upgrades, SIGHUP reloads; once a
 * successor has taken over, this daemon drains as on SIGTERM.
 */
function handleSignals(config: DaemonConfig, daemon: Daemon, admin: AdminServer, metrics: () => HttpServer | undefined): void {
  let stopping = false;
  let handedOver = false;
  let adminMoved = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    daemon.ready = false;
    logger.info(`${signal}: no longer accepting; waiting up to ${config.shutdownGraceMs / 1000} s for requests in flight`);
    daemon.stopFollowing();
    Promise.all([handedOver && !adminMoved ? untilReplaced(admin).then(() => admin.stop()) : admin.stop(), daemon.stop()]).then(
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
  // Upgraded: the successor serves every tenant beside us and holds the admin socket; drain as SIGTERM does.
  daemon.onHandedOver = (r) => {
    handedOver = true;
    // The config moved the admin socket: the old path goes away with this daemon's (no write lands here meanwhile).
    adminMoved = r.admin_socket !== config.adminSocket;
    // Scrapes go to the successor's listener from now on (the kernel sends them to the one left).
    void metrics()?.stop(false);
    stop(`upgraded to pid ${r.new.pid} (${r.new.version})`);
  };
  process.on("SIGUSR2", () => {
    logger.info("SIGUSR2: upgrading");
    daemon.admin.upgrade().catch((err) => logger.error((err as Error).message));
  });
  process.on("SIGHUP", () => {
    logger.info("SIGHUP: reloading");
    daemon.admin.reload().catch(() => {}); // reload logs its own outcome, and keeps the old config on error
  });
}

/** The host's ingress listeners: one that cannot be bound is the operator's to fix now, so the daemon stops. */
async function listenIngress(config: DaemonConfig, daemon: Daemon, admin: AdminServer): Promise<void> {
  if (config.ingressListen.length === 0) return;
  const failed = await daemon.listenIngress();
  if (failed) {
    await Promise.all([daemon.stop(), admin.stop()]);
    throw new NsproxyError(`ingress listener: ${failed.message}; stopping`);
  }
  logger.info(`ingress on ${config.ingressListen.map((l) => (l.kind === "sni" ? l.text : `http://${l.text.replace(/^http:\/\//, "")}`)).join(", ")} (host namespace)`);
}

/**
 * A successor's last steps: every tenant that served before serves here (else the upgrade fails with the
 * list), its metrics listener binds beside the old one, the running daemon agrees, then the admin socket
 * moves here in one rename() (or was linked at its new path before the report, when the config moved it).
 */
async function takeOver(
  daemon: Daemon,
  pred: Predecessor,
  pending: PendingAdminServer,
  before: Set<string> | undefined,
  listenMetrics: () => Promise<HttpServer | undefined>,
): Promise<HttpServer | undefined> {
  // Test hook (ignored by the release binary): hold the takeover back, so a write can arrive meanwhile.
  const hold = Number(process.env.NSPROXY_COMPILED === "1" ? 0 : (process.env.NSPROXY_TEST_HOLD_HANDOVER_MS ?? 0));
  if (hold > 0) await new Promise((resolve) => setTimeout(resolve, hold));
  const lost = lostTenants(before ?? new Set(), new Map(daemon.admin.tenants().map((t) => [t.name, t])));
  if (lost.length > 0) {
    await daemon.stop();
    throw new NsproxyError(lost.join("; "));
  }
  // Ready for every probe from its first answer: the old daemon's listener closes only after the report.
  daemon.ready = true;
  let metrics: HttpServer | undefined;
  try {
    metrics = await listenMetrics();
  } catch (err) {
    await daemon.stop();
    throw err;
  }
  // A new path (admin_socket changed) is taken before the report, so that a path someone else took meanwhile
  // fails the upgrade; the old path is replaced only after it, in one rename().
  try {
    if (pending.moved) pending.publish();
  } catch (err) {
    await Promise.all([daemon.stop(), metrics?.stop(true)]);
    throw new NsproxyError(`admin socket ${pending.path}: ${(err as Error).message}`);
  }
  if (!(await report(pred, { ready: true, adminSocket: pending.path }))) {
    await Promise.all([daemon.stop(), metrics?.stop(true), pending.stop()]);
    throw new NsproxyError(`the running daemon (pid ${pred.pid}) did not hand over (it gave up waiting, or is gone); this one stops`);
  }
  if (!pending.moved) pending.publish();
  daemon.pool.handover = undefined;
  daemon.handover.takenOverAt = Date.now();
  logger.info(`took over from pid ${pred.pid} (generation ${daemon.handover.generation}); it drains and exits`);
  return metrics;
}

/**
 * The metrics listener (SO_REUSEPORT, so that an upgrade's successor binds beside this one: no gap for a
 * scrape). Anyone else on the address is refused, as without it (the probe binds without SO_REUSEPORT);
 * a successor shares it with its predecessor only. Served until exit.
 */
async function serveMetrics(config: DaemonConfig, daemon: Daemon, admin: AdminServer): Promise<HttpServer | undefined> {
  if (!config.metrics.listen) return undefined;
  const { host, port, text } = config.metrics.listen;
  const app = createMetricsApp({ metrics: () => daemon.admin.metrics(), ready: () => daemon.ready });
  let server: HttpServer;
  try {
    const pred = predecessor();
    if (probeAloneRaw(host, port) < 0 && !(pred && heldOnlyBy(pred.pid, host, port))) {
      throw new Error(pred ? `Address already in use, by a listener that is not the running daemon's (pid ${pred.pid})` : "Address already in use");
    }
    server = runtime.serveHttp({ hostname: host, port, reusePort: true }, (req) => app.fetch(req));
  } catch (err) {
    await admin.stop();
    throw new NsproxyError(`metrics listener ${text}: ${(err as Error).message}`);
  }
  logger.info(`metrics on http://${text}/metrics (and /healthz, /readyz), host namespace only`);
  return server;
}

/** The old generation keeps its admin socket until the successor has moved its own over the path (a moment). */
async function untilReplaced(admin: AdminServer, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (admin.owned() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

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
