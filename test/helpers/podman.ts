// A real `podman system service` of the test's own (storage, run root and socket in a temporary directory), and removal of all of it.
import type { Subprocess } from "bun";
import { mkdirSync, mkdtempSync } from "node:fs";
import { RUN_DIR } from "./daemon.ts";
import { podmanIn } from "./containers.ts";
import { dockerMissing, removeRuntimeDir, run, which } from "./dockerd.ts";
import { until } from "./wait.ts";

/** Why a podman test cannot run here, or undefined. */
export const podmanMissing = dockerMissing ?? (!which("podman") || !which("runc") ? "needs podman and runc (apt-get install podman runc)" : undefined);

/**
 * Podman's Docker-compatible service, the CLI on the same storage (events_logger=file lets the service see the
 * CLI's events). `start()` makes its directory and containers.conf the first time; `remove()` takes it all away.
 */
export class PodmanService {
  dir = "";
  private proc?: Subprocess;

  get socket(): string {
    return `${this.dir}/podman.sock`;
  }

  private get env(): Record<string, string> {
    return { CONTAINERS_CONF: `${this.dir}/containers.conf` };
  }

  podman(args: string[], timeoutMs?: number): Promise<string> {
    return run(["podman", "--root", `${this.dir}/storage`, "--runroot", `${this.dir}/run`, ...args], this.env, timeoutMs);
  }

  async start(): Promise<void> {
    if (!this.dir) this.prepare();
    const dir = this.dir;
    this.proc = Bun.spawn(["podman", "--root", `${dir}/storage`, "--runroot", `${dir}/run`, "system", "service", "--time", "0", `unix://${dir}/podman.sock`], {
      stdout: "ignore",
      stderr: Bun.file(`${dir}/service.log`),
      env: { ...process.env, ...this.env },
    });
    await until("podman's service to answer", async () => {
      try {
        return (await fetch("http://podman/_ping", { unix: `${dir}/podman.sock` } as RequestInit)).ok;
      } catch {
        return false;
      }
    }, 30_000);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    p.kill("SIGTERM");
    const timer = setTimeout(() => p.kill("SIGKILL"), 10_000);
    await p.exited;
    clearTimeout(timer);
    this.proc = undefined;
  }

  /** Every container and image removed, the service stopped, its directory unmounted and deleted. */
  async remove(): Promise<void> {
    if (!this.dir) return;
    try {
      await this.podman(["rm", "-af", "-t", "0"], 120_000);
      await this.podman(["rmi", "-af"]);
    } catch (e) {
      console.warn(`podman cleanup: ${(e as Error).message}`);
    }
    await this.stop();
    removeRuntimeDir(this.dir);
  }

  private prepare(): void {
    mkdirSync(RUN_DIR, { recursive: true });
    this.dir = mkdtempSync(`${RUN_DIR}/podman-`);
    podmanIn(this.dir);
  }
}
