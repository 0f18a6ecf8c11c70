// Build: compile libnetns.c, then bundle the CLI, its worker and the library into one executable.
//   bun build.ts            dist/nsproxy for this host, in about a second (the tests build and run it)
//   bun build.ts --release  dist/release/nsproxy-linux-{x64,arm64}{,-musl} and SHA256SUMS, offline but for the
//                           pinned runtimes from the npm registry (cached under node_modules/.cache)
import { $, type BunPlugin } from "bun";
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import pkg from "./package.json" with { type: "json" };
import lock from "./package-lock.json" with { type: "json" };

const root = import.meta.dir;
const DIST = `${root}/dist`;
const OUT = `${DIST}/nsproxy`;
const RELEASE = `${DIST}/release`;
const RUNTIME_CACHE = `${root}/node_modules/.cache/nsproxy-runtimes`;

type Arch = "x64" | "arm64";
const HOST_ARCH = process.arch as Arch;

/** A release artifact: its name, Bun's compile target, and the npm package that holds that runtime. */
interface Target {
  name: string;
  arch: Arch;
  bun: Bun.Build.CompileTarget;
  runtime: string;
}

const TARGETS: Target[] = [
  { name: "linux-x64", arch: "x64", bun: "bun-linux-x64", runtime: "@oven/bun-linux-x64" },
  { name: "linux-x64-musl", arch: "x64", bun: "bun-linux-x64-musl", runtime: "@oven/bun-linux-x64-musl" },
  { name: "linux-arm64", arch: "arm64", bun: "bun-linux-arm64", runtime: "@oven/bun-linux-aarch64" },
  { name: "linux-arm64-musl", arch: "arm64", bun: "bun-linux-arm64-musl", runtime: "@oven/bun-linux-aarch64-musl" },
];

/** This machine as a target name: linux-x64, or linux-x64-musl when the running runtime is a musl one. */
let host: string | undefined;
function hostTarget(): string {
  if (!host) {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    host = `linux-${HOST_ARCH}${report?.header?.glibcVersionRuntime ? "" : "-musl"}`;
  }
  return host;
}

function newer(sources: string[], out: string): boolean {
  try {
    const built = statSync(out).mtimeMs;
    return sources.some((src) => statSync(src).mtimeMs > built);
  } catch {
    return true;
  }
}

/** Where the library of an architecture goes: this host's is dist/libnetns.so, which the sources import. */
export function libPath(arch: Arch = HOST_ARCH): string {
  return arch === HOST_ARCH ? `${DIST}/libnetns.so` : `${DIST}/libnetns-${arch}.so`;
}

/** The C compiler for an architecture: CC for this host's, else Debian's cross compiler (CC_ARM64 / CC_X64). */
function compiler(arch: Arch): string {
  if (arch === HOST_ARCH) return process.env.CC || "cc";
  const cc = arch === "arm64" ? process.env.CC_ARM64 || "aarch64-linux-gnu-gcc" : process.env.CC_X64 || "x86_64-linux-gnu-gcc";
  if (!Bun.which(cc)) throw new Error(`${cc} not found: it builds the ${arch} libnetns.so (Debian: apt-get install gcc-${arch === "arm64" ? "aarch64" : "x86-64"}-linux-gnu, or bash scripts/setup.sh test)`);
  return cc;
}

/**
 * Step 1: the C library for one architecture, with every warning an error, and no C library (see libnetns.c):
 * --no-undefined makes the link fail if the compiler slipped in a call to libc or libgcc (memset, outline
 * atomics), so the .so keeps no NEEDED entry. Skipped when already up to date.
 */
export async function buildNative(arch: Arch = HOST_ARCH): Promise<string> {
  const lib = libPath(arch);
  mkdirSync(DIST, { recursive: true });
  if (newer([`${root}/libnetns.c`, `${root}/build.ts`], lib)) {
    const flags = ["-O2", "-Wall", "-Wextra", "-Werror", "-nostdlib", "-ffreestanding", "-fno-stack-protector", "-fPIC", "-shared", "-Wl,--no-undefined"];
    // aarch64: atomics inline (LL/SC) instead of calls into libgcc's outline helpers.
    if (arch === "arm64") flags.push("-mno-outline-atomics");
    await $`${compiler(arch)} ${flags} -o ${lib} ${root}/libnetns.c`;
  }
  return lib;
}

/** The commit built from, when built from a git checkout ("" otherwise). */
async function commit(): Promise<string> {
  // Not being in a git checkout (a source tarball) is normal, not a failure: the commit is then unknown.
  const git = await $`git -C ${root} rev-parse --short HEAD`.nothrow().quiet();
  return git.exitCode === 0 ? git.stdout.toString().trim() : "";
}

/** The runtime version and npm integrity package-lock.json pins for a runtime package. */
function pinned(runtime: string): { version: string; integrity: string } {
  const entry = (lock.packages as Record<string, { version?: string; integrity?: string }>)[`node_modules/${runtime}`];
  if (!entry?.version || !entry.integrity) throw new Error(`${runtime} is not pinned in package-lock.json (it comes with the bun devDependency)`);
  return { version: entry.version, integrity: entry.integrity };
}

/**
 * The runtime executable a target embeds: the running one when it is that target at the pinned version, else
 * the npm package's bin/bun, fetched once with `npm pack` (checked against package-lock.json's integrity).
 */
async function runtimeFor(t: Target): Promise<string> {
  const { version, integrity } = pinned(t.runtime);
  if (t.name === hostTarget() && Bun.version === version) return process.execPath;
  const dir = `${RUNTIME_CACHE}/${t.runtime.replace("@oven/", "")}-${version}`;
  if (existsSync(`${dir}/bun`)) return `${dir}/bun`;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    console.log(`fetching ${t.runtime}@${version} (npm pack)`);
    const packed = JSON.parse(await $`npm pack --json --silent ${`${t.runtime}@${version}`} --pack-destination ${tmp}`.text()) as { filename: string; integrity: string }[];
    const got = packed[0]!;
    if (got.integrity !== integrity) throw new Error(`${t.runtime}@${version}: integrity ${got.integrity}, package-lock.json pins ${integrity}`);
    await $`tar -xzf ${`${tmp}/${got.filename}`} -C ${tmp} package/bin/bun`;
    mkdirSync(dir, { recursive: true });
    renameSync(`${tmp}/package/bin/bun`, `${dir}/bun`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return `${dir}/bun`;
}

/** The sources import dist/libnetns.so; a target of another architecture gets its own library instead. */
function libnetnsFor(arch: Arch): BunPlugin {
  return {
    name: `libnetns-${arch}`,
    setup(build) {
      build.onResolve({ filter: /\/dist\/libnetns\.so$/ }, () => ({ path: libPath(arch) }));
    },
  };
}

/** Step 2: one executable with the worker as a second entrypoint and the library embedded. */
async function buildBinary(out: string, target: string, compile: { target?: Bun.Build.CompileTarget; executablePath?: string }, arch: Arch): Promise<void> {
  const sha = await commit();
  const version = sha ? `${pkg.version}+${sha}` : pkg.version;
  const result = await Bun.build({
    entrypoints: [`${root}/src/cli.ts`, `${root}/src/worker/worker.ts`],
    // A daemon run as root reads no .env or bunfig.toml from whatever directory it was started in.
    compile: { ...compile, outfile: out, autoloadDotenv: false, autoloadBunfig: false },
    plugins: arch === HOST_ARCH ? [] : [libnetnsFor(arch)],
    // Unminified: stack traces under --verbose stay readable, and the size is the runtime's anyway.
    define: {
      NSPROXY_BUILD_VERSION: JSON.stringify(version),
      NSPROXY_BUILD_COMMIT: JSON.stringify(sha),
      NSPROXY_BUILD_TARGET: JSON.stringify(target),
      "process.env.NSPROXY_COMPILED": JSON.stringify("1"),
    },
  });
  if (!result.success) {
    for (const log of result.logs) console.error(log);
    throw new Error(`bun build failed for ${target}`);
  }
  console.log(`built ${out} (${version}, ${target}, ${(statSync(out).size / 1e6).toFixed(0)} MB)`);
}

/** Step 3 of a release: SHA256SUMS in the format `sha256sum -c` reads. */
async function writeChecksums(files: string[]): Promise<void> {
  const lines: string[] = [];
  for (const file of files) {
    const hasher = new Bun.CryptoHasher("sha256");
    for await (const chunk of Bun.file(file).stream()) hasher.update(chunk);
    lines.push(`${hasher.digest("hex")}  ${file.slice(RELEASE.length + 1)}`);
  }
  writeFileSync(`${RELEASE}/SHA256SUMS`, `${lines.join("\n")}\n`);
}

/** Every target, from this one machine: both libraries, then each runtime and binary, then the checksums. */
async function release(): Promise<void> {
  rmSync(RELEASE, { recursive: true, force: true });
  mkdirSync(RELEASE, { recursive: true });
  for (const arch of ["x64", "arm64"] as const) await buildNative(arch);
  const files: string[] = [];
  for (const t of TARGETS) {
    const out = `${RELEASE}/nsproxy-${t.name}`;
    await buildBinary(out, t.name, { target: t.bun, executablePath: await runtimeFor(t) }, t.arch);
    files.push(out);
  }
  await writeChecksums(files);
  console.log(`wrote ${RELEASE}/SHA256SUMS`);
}

if (import.meta.main) {
  if (process.argv.includes("--release")) {
    await release();
  } else {
    await buildNative();
    await buildBinary(OUT, hostTarget(), {}, HOST_ARCH);
  }
}
