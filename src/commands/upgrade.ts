// `nsproxy upgrade`: the running daemon starts a successor that takes over every listener, then drains and exits.
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { defineCommand } from "citty";
import { AdminClient, DaemonNotRunning } from "../admin/client.ts";
import { EXIT, NsproxyError } from "../errors.ts";
import { clientArgs, daemonPaths, rejectUnknownFlags } from "./args.ts";

const args = {
  binary: { type: "string", description: "The nsproxy executable to start (default: the running daemon's own path, which a package upgrade replaces)" },
  json: { type: "boolean", description: "Print the old and new pid and version as JSON" },
  ...clientArgs,
} as const;

/** A successor attaches every tenant before the daemon answers; then the old one drains (its grace period). */
const ANSWER_TIMEOUT_MS = 300_000;

export default defineCommand({
  meta: { name: "upgrade", description: "Replace the running daemon with a new one (same configuration) without dropping a connection, as SIGUSR2 does" },
  args,
  async run({ args: parsed, rawArgs }) {
    rejectUnknownFlags(rawArgs, args);
    // The daemon starts it, from its own working directory: the path must not depend on ours.
    const binary = parsed.binary ? resolve(parsed.binary) : undefined;
    if (binary && !existsSync(binary)) throw new NsproxyError(`--binary ${binary}: no such file`, { exitCode: EXIT.usage });
    const socket = daemonPaths(parsed).socket;
    const client = new AdminClient(socket, ANSWER_TIMEOUT_MS);
    // A failed successor comes back as the daemon's 500 with the successor's own error: exit 1, the old one serves on.
    const r = await client.upgrade(binary).catch((err) => {
      // The config names a new admin socket the running daemon does not serve yet: say how to reach it.
      if (!(err instanceof DaemonNotRunning)) throw err;
      const hint = "if the running daemon uses another admin socket (admin_socket changed in the config since it started), pass --admin-socket with that path, or send it SIGUSR2";
      throw new NsproxyError(`${err.message}; ${hint}`, { cause: err });
    });
    if (parsed.json) print(JSON.stringify(r, null, 2));
    else {
      print(`upgrading: pid ${r.old.pid} (${r.old.version}) -> pid ${r.new.pid} (${r.new.version}); waiting for pid ${r.old.pid} to drain and exit`);
      if (r.admin_socket && r.admin_socket !== socket) print(`admin socket: now ${r.admin_socket} (the config changed it; ${socket} goes away with pid ${r.old.pid})`);
    }
    await exited(r.old.pid, ANSWER_TIMEOUT_MS);
    if (!parsed.json) print(`upgraded: pid ${r.new.pid} (${r.new.version}) serves; pid ${r.old.pid} has exited`);
  },
});

/** Wait for process `pid` to be gone (it drains for up to its grace period first). */
async function exited(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > deadline) throw new NsproxyError(`pid ${pid} is still draining after ${timeoutMs / 1000} s; the new daemon serves meanwhile`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Whether `pid` still runs. A zombie has exited: the drained daemon's parent is whoever started it, or after
 * an earlier upgrade init, and until that reaps it (some inits late, a container's shell never) kill(pid, 0)
 * still succeeds, so the process state in /proc decides.
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    // The state follows the command name, which may hold spaces and parentheses: after the last ") ".
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(") ") + 2));
  } catch {
    return false; // gone between the two looks
  }
}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}
