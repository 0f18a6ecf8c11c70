// A real dockerd of the test's own (its socket, data and exec roots in a temporary directory), a busybox image, and removal of all of it.
import type { Subprocess } from "bun";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { BUSYBOX, rootfs, run, unmountUnder, which } from "./containers.ts";
import { RUN_DIR } from "./daemon.ts";
import { skipReason } from "./netns.ts";
import { until } from "./wait.ts";

export { rootfs, run, which };

/** Why a dockerd test cannot run here, or undefined. */
export const dockerMissing =
  skipReason ?? (!which("dockerd") || !which("docker") ? "needs dockerd and docker (apt-get install docker.io)" : !BUSYBOX ? "needs busybox-static for the image" : !which("nsenter") ? "needs nsenter" : undefined);

/** Unmount what a runtime left mounted under `dir` (overlays, netns files), then remove it. */
export function removeRuntimeDir(dir: string): void {
  unmountUnder(dir);
  rmSync(dir, { recursive: true, force: true });
}

/** One dockerd: `start()` makes its directory the first time; `remove()` takes its containers, images and files away. */
export class Dockerd {
  dir = "";
  private proc?: Subprocess;

  get socket(): string {
    return `${this.dir}/docker.sock`;
  }

  get env(): Record<string, string> {
    return { DOCKER_HOST: `unix://${this.socket}` };
  }

  docker(args: string[], timeoutMs?: number): Promise<string> {
    return run(["docker", ...args], this.env, timeoutMs);
  }

  async start(): Promise<void> {
    if (!this.dir) {
      mkdirSync(RUN_DIR, { recursive: true });
      this.dir = mkdtempSync(`${RUN_DIR}/dockerd-`);
    }
    const dir = this.dir;
    this.proc = Bun.spawn(
      ["dockerd", "-H", `unix://${dir}/docker.sock`, "--data-root", `${dir}/data`, "--exec-root", `${dir}/exec`, "--pidfile", `${dir}/pid`, "--bridge", "none", "--iptables=false", "--ip6tables=false"],
      { stdout: "ignore", stderr: Bun.file(`${dir}/dockerd.log`) },
    );
    await until("dockerd to answer", async () => {
      try {
        return (await fetch("http://docker/_ping", { unix: `${dir}/docker.sock` } as RequestInit)).ok;
      } catch {
        return false;
      }
    }, 30_000).catch((e) => {
      throw new Error(`${(e as Error).message}\n${existsSync(`${dir}/dockerd.log`) ? readFileSync(`${dir}/dockerd.log`, "utf8").slice(-2000) : ""}`);
    });
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    p.kill("SIGTERM");
    const timer = setTimeout(() => p.kill("SIGKILL"), 15_000);
    await p.exited;
    clearTimeout(timer);
    this.proc = undefined;
  }

  /** Every container and the named images removed, dockerd stopped, its directory unmounted and deleted. */
  async remove(images: string[]): Promise<void> {
    if (!this.dir) return;
    try {
      const ids = (await this.docker(["ps", "-aq"])).split("\n").filter(Boolean);
      if (ids.length) await this.docker(["rm", "-f", ...ids], 120_000);
      if (images.length) await this.docker(["rmi", "-f", ...images]);
    } catch (e) {
      console.warn(`docker cleanup: ${(e as Error).message}`);
    }
    await this.stop();
    removeRuntimeDir(this.dir);
  }
}
