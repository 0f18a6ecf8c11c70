// What an upgrade refuses to start: files that cannot run on this machine, each with its reason.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { cannotRun, describe as describeElf, doesNotStart, elfKind } from "./executable.ts";

const dir = mkdtempSync(`${tmpdir()}/nsproxy-exe-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An ELF header: class (1: 32-bit, 2: 64-bit), data (1: little-, 2: big-endian), e_machine. */
function header(cls: number, data: number, machine: number): Uint8Array {
  const h = new Uint8Array(64);
  h.set([0x7f, 0x45, 0x4c, 0x46, cls, data, 1]);
  h[16] = 2;
  if (data === 1) h.set([machine & 0xff, machine >> 8], 18);
  else h.set([machine >> 8, machine & 0xff], 18);
  return h;
}

const own = elfKind(new Uint8Array(readFileSync("/proc/self/exe").subarray(0, 64)))!;

describe("elfKind", () => {
  test.each([
    ["aarch64, 64-bit little-endian", header(2, 1, 183)],
    ["x86-64, 64-bit little-endian", header(2, 1, 62)],
    ["i386, 32-bit little-endian", header(1, 1, 3)],
    ["s390x, 64-bit big-endian", header(2, 2, 22)],
    ["machine 9999, 64-bit little-endian", header(2, 1, 9999)],
  ] as const)("%s", (said, h) => expect(describeElf(elfKind(h)!)).toBe(said));

  test("not an ELF header: a script, text, too short", () => {
    expect(elfKind(new TextEncoder().encode("#!/bin/sh\nexec nsproxy\n"))).toBeUndefined();
    expect(elfKind(header(2, 1, 62).subarray(0, 10))).toBeUndefined();
  });

  test("this process's own executable is one of the machines named", () => expect(describeElf(own)).not.toStartWith("machine "));
});

describe("cannotRun", () => {
  const file = (name: string, content: string | Uint8Array, mode = 0o755) => {
    const path = `${dir}/${name}`;
    writeFileSync(path, content, { mode });
    chmodSync(path, mode);
    return path;
  };

  test("this machine's own executable, a copy of it and a #! wrapper can run", () => {
    expect(cannotRun("/proc/self/exe")).toBeUndefined();
    const copy = `${dir}/copy`;
    copyFileSync("/proc/self/exe", copy);
    chmodSync(copy, 0o755);
    expect(cannotRun(copy)).toBeUndefined();
    expect(cannotRun(file("wrapper", "#!/bin/sh\nexec /usr/bin/nsproxy \"$@\"\n"))).toBeUndefined();
  });

  test("an ELF for another machine or layout names both", () => {
    const foreign = own.machine === 183 ? 62 : 183;
    const path = file("foreign", header(2, 1, foreign));
    expect(cannotRun(path)).toBe(`${path} is built for ${describeElf({ machine: foreign, layout: "64-bit little-endian" })}; this machine runs ${describeElf(own)}: install the ${describeElf(own).split(",")[0]} build`);
    const bits = file("bits", header(1, 1, own.machine));
    expect(cannotRun(bits)).toContain(`${bits} is built for ${describeElf({ machine: own.machine, layout: "32-bit little-endian" })}; this machine runs`);
  });

  test("missing, a directory, not executable, not a program", () => {
    expect(cannotRun(`${dir}/nowhere`)).toBe(`${dir}/nowhere: no such file`);
    mkdirSync(`${dir}/d`);
    expect(cannotRun(`${dir}/d`)).toBe(`${dir}/d is not a regular file`);
    const plain = file("plain", header(2, 1, own.machine), 0o644);
    expect(cannotRun(plain)).toBe(`${plain} is not executable (mode 0644)`);
    const text = file("text", "nsproxy 2.0\n");
    expect(cannotRun(text)).toBe(`${text} is not a program: neither an ELF executable nor a #! script`);
    const empty = file("empty", "");
    expect(cannotRun(empty)).toBe(`${empty} is not a program: neither an ELF executable nor a #! script`);
  });
});

describe("doesNotStart", () => {
  const script = (name: string, body: string) => {
    const path = `${dir}/${name}`;
    writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return path;
  };

  test("nsproxy itself answers version", async () => {
    expect(await doesNotStart([process.execPath, `${import.meta.dir}/../cli.ts`])).toBeUndefined();
  });

  test("what a binary prints when it cannot start is in the reason, last lines first", async () => {
    const libc = script("libc", `echo 'nsproxy: /lib/libc.so.6: version GLIBC_2.99 not found' >&2; exit 1`);
    expect(await doesNotStart([libc])).toBe(`the successor ${libc} exited (code 1) before it was serving (\`${libc} version\`: nsproxy: /lib/libc.so.6: version GLIBC_2.99 not found)`);
    expect(await doesNotStart(["/bin/false"])).toBe("the successor /bin/false exited (code 1) before it was serving (`/bin/false version`: no output)");
    const many = script("many", `for i in 1 2 3 4 5 6 7; do echo line $i >&2; done; kill -SEGV $$`);
    expect(await doesNotStart([many])).toBe(`the successor ${many} exited (SIGSEGV) before it was serving (\`${many} version\`: line 3 | line 4 | line 5 | line 6 | line 7)`);
  });

  test("a program that is not nsproxy, or does not answer", async () => {
    const other = script("other", "echo 'GNU coreutils 9.1'");
    expect(await doesNotStart([other])).toBe(`${other} does not look like nsproxy: \`${other} version\` printed "GNU coreutils 9.1"`);
    const slow = script("slow", "exec sleep 30");
    expect(await doesNotStart([slow], 300)).toBe(`the successor ${slow} did not answer \`${slow} version\` within 0.3 s`);
  });
});
