// The tenants directory: one NAME.toml per tenant added at runtime, each written atomically so a crash never leaves half a file.
import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { normalizeTenantTable, parseTenantFile, tenantTableToToml } from "../config/tenant-table.ts";
import type { FileTenant } from "../config/schema.ts";
import { badTenantName, isValidTenantName } from "../config/values.ts";
import { NsproxyError } from "../errors.ts";
import { FileRefused, readBounded } from "../fs/read-bounded.ts";
import { crashHere, tenantWriteFault } from "../faults.ts";

export interface StoredTenant {
  name: string;
  file: string;
  tenant: FileTenant;
  /** The file's table, normalized (normalizeTenantTable). */
  table: Record<string, unknown>;
}

export interface TenantsDirContents {
  tenants: StoredTenant[];
  /** Files that could not be read or were invalid; `error` names the file (and line when known). */
  skipped: { file: string; error: string }[];
}

const SUFFIX = ".toml";
/** One tenant's file is a few hundred bytes; a larger one is a mistake or an attack, refused before it is read. */
export const MAX_TENANT_FILE_BYTES = 1 << 20;

/** The file that holds tenant `name`. The name is checked: it becomes a path component. */
export function tenantFilePath(dir: string, name: string): string {
  if (!isValidTenantName(name)) throw new NsproxyError(badTenantName(name, "(a tenants-directory file name)"));
  return join(dir, `${name}${SUFFIX}`);
}

/**
 * Every NAME.toml in `dir` whose NAME is a valid tenant name, sorted. Dotfiles (our temp files among them), other
 * suffixes and directories are not tenants. A missing directory has no tenants.
 */
export function listTenantFiles(dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    if (errno(e) === "ENOENT") return [];
    throw new NsproxyError(`cannot read tenants directory ${dir}: ${message(e)}`, { cause: e });
  }
  return entries
    .filter((d) => !d.isDirectory() && d.name.endsWith(SUFFIX) && isValidTenantName(d.name.slice(0, -SUFFIX.length)))
    .map((d) => join(dir, d.name))
    .sort();
}

/** Read and check every tenant file; one bad file is skipped with its reason and never stops the others. */
export function readTenantsDir(dir: string): TenantsDirContents {
  const out: TenantsDirContents = { tenants: [], skipped: [] };
  for (const file of listTenantFiles(dir)) {
    const name = file.slice(file.lastIndexOf("/") + 1, -SUFFIX.length);
    let source: string;
    try {
      source = readBounded(file, MAX_TENANT_FILE_BYTES).toString("utf8");
    } catch (e) {
      if (!(e instanceof FileRefused)) throw e;
      out.skipped.push({ file, error: `${file}: cannot read: ${e.reason}` });
      continue;
    }
    try {
      out.tenants.push({ name, file, ...parseTenantFile(file, name, source) });
    } catch (e) {
      if (!(e instanceof NsproxyError)) throw e;
      out.skipped.push({ file, error: e.message });
    }
  }
  return out;
}

/**
 * Store `table` as NAME.toml unless the file already holds the same normalized table (then nothing is touched, not
 * even the mtime). The caller validates the table first (checkTenantTable).
 */
export function writeTenantFile(dir: string, name: string, table: Record<string, unknown>): { file: string; changed: boolean } {
  const file = tenantFilePath(dir, name);
  const wanted = normalizeTenantTable(table);
  if (sameValue(readExisting(file, name), wanted)) return { file, changed: false };
  const text = tenantTableToToml(name, wanted);
  const tmp = join(dir, `.${name}${SUFFIX}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`);
  // Tests kill the process at each step below (src/faults.ts); the release binary never does.
  const crashAt = tenantWriteFault();
  let fd = -1;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
    // The umask may have narrowed the mode; the file is configuration that operators read.
    fchmodSync(fd, 0o644);
    if (crashAt === "torn") {
      writeSync(fd, text.slice(0, text.length >> 1));
      fsyncSync(fd);
      crashHere();
    }
    writeFileSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    if (crashAt === "before-rename") crashHere();
    // The rename is atomic: readers see the old file or the new one, never a partial write.
    renameSync(tmp, file);
  } catch (e) {
    if (fd >= 0) closeQuietly(fd);
    unlinkQuietly(tmp);
    throw new NsproxyError(`cannot write ${file}: ${message(e)}`, { cause: e });
  }
  if (crashAt === "after-rename") crashHere();
  // Without this the rename itself may not survive a crash.
  syncDir(dir, file);
  return { file, changed: true };
}

/** Delete NAME.toml; false when there was none. */
export function removeTenantFile(dir: string, name: string): boolean {
  const file = tenantFilePath(dir, name);
  try {
    unlinkSync(file);
  } catch (e) {
    if (errno(e) === "ENOENT") return false;
    throw new NsproxyError(`cannot remove ${file}: ${message(e)}`, { cause: e });
  }
  syncDir(dir, file);
  return true;
}

/**
 * The existing file's normalized table, or undefined when it is absent, unreadable or not TOML: any of those gets
 * rewritten, and a real problem with the path shows up as the write's error.
 */
function readExisting(file: string, name: string): Record<string, unknown> | undefined {
  try {
    return parseTenantFile(file, name, readBounded(file, MAX_TENANT_FILE_BYTES).toString("utf8")).table;
  } catch {
    return undefined;
  }
}

/** Deep equality of TOML values: arrays in order, tables by key whatever their order (and prototype: smol-toml's have none). */
function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  }
  if (isTable(a) && isTable(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && sameValue(a[k], b[k]));
  }
  return a === b;
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function syncDir(dir: string, file: string): void {
  let fd = -1;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    fsyncSync(fd);
  } catch (e) {
    throw new NsproxyError(`${file}: fsync of directory ${dir} failed: ${message(e)}`, { cause: e });
  } finally {
    if (fd >= 0) closeQuietly(fd);
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already failing; the first error is the one to report.
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Never created, or already gone.
  }
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
