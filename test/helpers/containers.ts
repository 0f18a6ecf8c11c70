// Container runtimes made by a test: tools present, a busybox image without a registry, a private podman, and its removal.
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";

export const which = (tool: string) => Bun.spawnSync(["sh", "-c", `command -v ${tool}`]).exitCode === 0;

/** A static busybox is a whole image by itself ("ldd" refuses a static executable). */
export const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p) && Bun.spawnSync(["ldd", p]).exitCode !== 0);

/** A tiny image's rootfs tarball from busybox (for `docker import` / `podman import`): no registry needed. */
export function rootfs(dir: string): string {
  const r = `${dir}/rootfs`;
  mkdirSync(`${r}/bin`, { recursive: true });
  copyFileSync(BUSYBOX!, `${r}/bin/busybox`);
  for (const tool of ["sh", "sleep"]) symlinkSync("busybox", `${r}/bin/${tool}`);
  const tar = `${dir}/rootfs.tar`;
  const t = Bun.spawnSync(["tar", "-C", r, "-cf", tar, "."]);
  if (t.exitCode !== 0) throw new Error(`tar: ${t.stderr.toString()}`);
  return tar;
}

/** Run a CLI to completion; a non-zero exit throws with its stderr, a hang is killed after timeoutMs. */
export async function run(argv: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<string> {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${err.trim()}`);
  return out.trim();
}

/** curl from inside a container's network namespace (its first process's); `cli` is docker or podman. */
export async function curlInContainer(cli: (args: string[]) => Promise<string>, name: string, url: string): Promise<{ status: number; body: string }> {
  const pid = await cli(["inspect", "-f", "{{.State.Pid}}", name]);
  const p = Bun.spawn(["nsenter", `--net=/proc/${pid}/ns/net`, "curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", url], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(p.stdout).text();
  await p.exited;
  const cut = out.lastIndexOf("\n");
  return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) };
}

/** Whatever a runtime left mounted under `dir` (overlays, netns files), innermost first, before the files go. */
export function unmountUnder(dir: string): void {
  const mounts = readFileSync("/proc/self/mounts", "utf8").split("\n").map((l) => l.split(" ")[1] ?? "").filter((m) => m.startsWith(dir)).reverse();
  for (const m of mounts) Bun.spawnSync(["umount", "-l", m]);
}

/**
 * A podman of the test's own: storage, runroot, tmp and CNI configs under `dir`, nothing of the machine's podman
 * touched. runc (crun is not in Debian 12's podman dependencies here), limits runc accepts, the CNI backend.
 */
export function podmanIn(dir: string, cniPluginDirs: string[] = []) {
  for (const d of ["tmp", "cni"]) mkdirSync(`${dir}/${d}`, { recursive: true });
  writeFileSync(`${dir}/containers.conf`, [
    "[containers]",
    'default_ulimits = ["nofile=1024:4096", "nproc=4096:4096"]',
    "[engine]",
    'runtime = "runc"',
    'events_logger = "file"',
    'cgroup_manager = "cgroupfs"',
    `tmp_dir = "${dir}/tmp"`,
    "[network]",
    'network_backend = "cni"',
    `network_config_dir = "${dir}/cni"`,
    `cni_plugin_dirs = ${JSON.stringify(["/usr/lib/cni", ...cniPluginDirs])}`,
    "",
  ].join("\n"));
  const env = { CONTAINERS_CONF: `${dir}/containers.conf` };
  const argv = ["podman", "--root", `${dir}/storage`, "--runroot", `${dir}/run`];
  return { env, argv, cli: (args: string[], timeoutMs?: number) => run([...argv, ...args], env, timeoutMs) };
}
