// Reading perf's output for bench/profile.ts: samples from `perf script`, the kind of code a frame is in, and JSC's JIT dump as perf-map lines.

/** What kind of code a frame is in. */
export type Kind = "kernel" | "JIT'd JS" | "runtime native" | "libc" | "other";
export const KINDS: Kind[] = ["kernel", "JIT'd JS", "runtime native", "libc", "other"];

/** `self`: the end of the profiled program's own file name (bun.exe, haproxy). */
export function kindOf(dso: string, self: string): Kind {
  if (dso.includes("kernel.kallsyms") || dso.startsWith("[k")) return "kernel";
  if (/perf-\d+\.map|jitted-\d+-\d+\.so/.test(dso)) return "JIT'd JS";
  if (dso.endsWith(self) || /bun(\.exe)?$/.test(dso)) return "runtime native";
  if (/libc[.-]|ld-linux|libm[.-]|libpthread/.test(dso)) return "libc";
  return "other";
}

export interface Frame {
  sym: string;
  dso: string;
}

/**
 * `perf script -F comm,tid,ip,sym,dso` with call chains: a header line per sample, then one indented line per frame
 * (innermost first), a blank line between samples.
 */
export function samples(text: string): { comm: string; frames: Frame[] }[] {
  const out: { comm: string; frames: Frame[] }[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const lines = block.split("\n").filter((l) => l.trim() !== "");
    if (lines.length < 2) continue;
    const comm = lines[0]!.trim().split(/\s+\d+/)[0]!;
    const frames = lines.slice(1).map((l) => {
      const m = /^\s*([0-9a-f]+)\s+(.*?)\s+\(([^)]*)\)\s*$/.exec(l);
      if (!m) return { sym: "?", dso: "?" };
      // Bun's release binary has no symbol table: its functions are told apart by address only.
      const sym = m[2] === "[unknown]" ? `[${m[3]!.split("/").pop()} ${m[1]!.replace(/^0+/, "")}]` : m[2]!.replace(/\+0x[0-9a-f]+$/, "");
      return { sym, dso: m[3]! };
    });
    out.push({ comm, frames });
  }
  return out;
}

/**
 * The code-load records of a JIT dump (perf's jitdump format, as JSC writes it with BUN_JSC_useJITDump=1) as perf-map
 * lines, "ADDR SIZE NAME" in hex. Code freed and reused at the same address keeps its first owner's name (a rare
 * mislabel under a steady load).
 */
export function perfMapLines(b: Buffer): string[] {
  const lines: string[] = [];
  const seen = new Set<bigint>();
  let at = b.readUInt32LE(8); // the file header's size
  while (at + 16 <= b.length) {
    const id = b.readUInt32LE(at);
    const size = b.readUInt32LE(at + 4);
    if (size < 16 || at + size > b.length) break;
    if (id === 0) {
      // JIT_CODE_LOAD: after id, size and timestamp come pid, tid, vma, code_addr, code_size, code_index, the name (NUL-ended).
      const addr = b.readBigUInt64LE(at + 32);
      const codeSize = b.readBigUInt64LE(at + 40);
      const nameAt = at + 56;
      const name = b.toString("utf8", nameAt, b.indexOf(0, nameAt));
      if (!seen.has(addr)) {
        seen.add(addr);
        lines.push(`${addr.toString(16)} ${codeSize.toString(16)} ${name}`);
      }
    }
    at += size;
  }
  return lines;
}
