// Whether a file can be an upgrade's successor on this machine: it exists, is executable, and its ELF header says this architecture.
import { spawn } from "node:child_process";
import { accessSync, closeSync, constants, openSync, readSync, statSync } from "node:fs";

/** e_machine values of the architectures nsproxy may meet (elf.h), by the names `uname -m` prints. */
const MACHINES: Record<number, string> = {
  3: "i386",
  8: "mips",
  20: "ppc",
  21: "ppc64",
  22: "s390x",
  40: "arm",
  62: "x86-64",
  183: "aarch64",
  243: "riscv64",
  258: "loongarch64",
};

export interface ElfKind {
  machine: number;
  /** "64-bit little-endian": EI_CLASS and EI_DATA, which the kernel checks as well as e_machine. */
  layout: string;
}

/** Names an ELF kind as an operator reads it ("aarch64, 64-bit little-endian"). */
export function describe(kind: ElfKind): string {
  return `${MACHINES[kind.machine] ?? `machine ${kind.machine}`}, ${kind.layout}`;
}

/** The ELF kind in the first bytes of a file; undefined when they are not an ELF header. */
export function elfKind(head: Uint8Array): ElfKind | undefined {
  if (head.length < 20 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return undefined;
  const bits = head[4] === 1 ? "32-bit" : head[4] === 2 ? "64-bit" : `class ${head[4]}`;
  const little = head[5] === 1;
  const order = little ? "little-endian" : head[5] === 2 ? "big-endian" : `data ${head[5]}`;
  // e_machine follows e_ident (16 bytes) and e_type (2), in the file's own byte order.
  const machine = little ? head[18]! | (head[19]! << 8) : (head[18]! << 8) | head[19]!;
  return { machine, layout: `${bits} ${order}` };
}

function readHead(path: string): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const head = new Uint8Array(64);
    return head.subarray(0, readSync(fd, head, 0, head.length, 0));
  } finally {
    closeSync(fd);
  }
}

/**
 * Why `path` cannot run here as a successor, or undefined when it can be tried. Compared with the running
 * process's own executable: an ELF for another machine would fail with ENOEXEC, or, where binfmt_misc hands
 * it to qemu, run emulated at a fraction of the speed — neither is an upgrade. A `#!` script is let through
 * (a wrapper); what it starts is its own business.
 */
export function cannotRun(path: string, self = "/proc/self/exe"): string | undefined {
  let head: Uint8Array;
  try {
    const st = statSync(path);
    if (!st.isFile()) return `${path} is not a regular file`;
    accessSync(path, constants.X_OK);
    head = readHead(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ENOENT") return `${path}: no such file`;
    if (e.code === "EACCES" && e.syscall === "access") return `${path} is not executable (mode 0${(statSync(path).mode & 0o7777).toString(8)})`;
    return `${path}: ${e.message}`;
  }
  if (head[0] === 0x23 && head[1] === 0x21) return undefined;
  const kind = elfKind(head);
  if (!kind) return `${path} is not a program: neither an ELF executable nor a #! script`;
  const own = elfKind(readHead(self));
  if (own && (kind.machine !== own.machine || kind.layout !== own.layout)) {
    return `${path} is built for ${describe(kind)}; this machine runs ${describe(own)}: install the ${MACHINES[own.machine] ?? "matching"} build`;
  }
  return undefined;
}

/** How long `version` may take: from source under Deno on a loaded machine, seconds. */
const VERSION_TIMEOUT_MS = 30_000;

/**
 * Run `program version`, its output captured: undefined when it answers like nsproxy, else why not, with
 * its last lines. The successor itself writes to this daemon's stderr (the journal) and outlives it, so
 * what a binary prints before nsproxy's own code runs (the dynamic loader's "GLIBC_2.39 not found", a
 * runtime's crash) would otherwise reach the journal but never the operator who ran `upgrade`.
 */
export function doesNotStart(program: string[], timeoutMs = VERSION_TIMEOUT_MS): Promise<string | undefined> {
  const asked = `\`${program.join(" ")} version\``;
  return new Promise((resolve) => {
    let out = "";
    let stdout = "";
    const child = spawn(program[0]!, [...program.slice(1), "version"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
    const keep = (chunk: Buffer) => void (out = (out + chunk.toString("utf8")).slice(-4096));
    child.stdout!.on("data", (chunk: Buffer) => ((stdout += chunk.toString("utf8").slice(0, 100)), keep(chunk)));
    child.stderr!.on("data", keep);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (err) => (clearTimeout(timer), resolve(`cannot start ${program[0]}: ${err.message}`)));
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const said = lastLines(out);
      if (code === 0 && /^nsproxy \S+/.test(stdout)) resolve(undefined);
      else if (code === 0) resolve(`${program[0]} does not look like nsproxy: ${asked} printed ${said ? `"${said}"` : "nothing"}`);
      else if (signal === "SIGKILL" && code === null) resolve(`the successor ${program[0]} did not answer ${asked} within ${timeoutMs / 1000} s`);
      else resolve(`the successor ${program[0]} exited (${signal ?? `code ${code}`}) before it was serving (${asked}: ${said || "no output"})`);
    });
  });
}

/** The last few non-empty lines, joined into one (the message is one log line). */
function lastLines(text: string, n = 5): string {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .slice(-n)
    .join(" | ");
}
