// The profile's readers of perf output: samples and their frames, the kind of code, and JIT dump records as perf-map lines.
import { describe, expect, test } from "bun:test";
import { kindOf, perfMapLines, samples } from "./perf.ts";

const SCRIPT = `Worker 4242
\t    7f0011223344 tcp_sendmsg_locked+0x12 ([kernel.kallsyms])
\t    7f00aabbccdd JSC-FTL: push#CO2084 (/tmp/perf-4240.map)

JSC PerfLog 4250
\t         183d651 [unknown] (/work/main/node_modules/bun/bin/bun.exe)
\t    7f00aabbccee JSC-FTL: readHead#ERn1Ok (/tmp/perf-4240.map)
`;

/** A JIT dump: the file header (its size at offset 8), then one code-load record, then a record of another kind. */
function jitDump(name: string, addr: bigint, size: bigint): Buffer {
  const header = Buffer.alloc(40);
  header.writeUInt32LE(40, 8);
  const nameBytes = Buffer.from(`${name}\0`);
  const load = Buffer.alloc(56 + nameBytes.length + 4); // 4 bytes of code
  load.writeUInt32LE(0, 0);
  load.writeUInt32LE(load.length, 4);
  load.writeBigUInt64LE(0n, 24); // vma (not the address perf wants)
  load.writeBigUInt64LE(addr, 32); // code_addr
  load.writeBigUInt64LE(size, 40);
  nameBytes.copy(load, 56);
  const other = Buffer.alloc(24);
  other.writeUInt32LE(2, 0); // JIT_CODE_DEBUG_INFO
  other.writeUInt32LE(24, 4);
  return Buffer.concat([header, load, other, load]); // the same block twice: listed once
}

describe("perf output", () => {
  test("perf script samples: thread names with spaces, innermost frame first, unnamed native code by address", () => {
    const s = samples(SCRIPT);
    expect(s.map((x) => x.comm)).toEqual(["Worker", "JSC PerfLog"]);
    expect(s[0]!.frames).toEqual([
      { sym: "tcp_sendmsg_locked", dso: "[kernel.kallsyms]" },
      { sym: "JSC-FTL: push#CO2084", dso: "/tmp/perf-4240.map" },
    ]);
    expect(s[1]!.frames[0]!.sym).toBe("[bun.exe 183d651]");
  });

  test("kinds of code: kernel, JIT'd JS (a perf map), the program itself, libc, the rest", () => {
    expect(kindOf("[kernel.kallsyms]", "bun.exe")).toBe("kernel");
    expect(kindOf("/tmp/perf-4240.map", "bun.exe")).toBe("JIT'd JS");
    expect(kindOf("/work/main/node_modules/bun/bin/bun.exe", "bun.exe")).toBe("runtime native");
    expect(kindOf("/usr/sbin/haproxy", "haproxy")).toBe("runtime native");
    expect(kindOf("/usr/lib/x86_64-linux-gnu/libc.so.6", "haproxy")).toBe("libc");
    expect(kindOf("[vdso]", "haproxy")).toBe("other");
  });

  test("a JIT dump's code loads become perf-map lines, each address once; other records are skipped", () => {
    expect(perfMapLines(jitDump("JSC-FTL: parseFields#C4pJPD", 0x7f00aabb0000n, 0x1a0n))).toEqual(["7f00aabb0000 1a0 JSC-FTL: parseFields#C4pJPD"]);
  });
});
