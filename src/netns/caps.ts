// The capabilities this process holds (from /proc/self/status), their names, and the start-up line that says what they allow.
import { readFileSync } from "node:fs";

/** Capability numbers (linux/capability.h), in order: CAP_NAMES[n] is capability n. */
export const CAP_NAMES = [
  "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE",
  "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT",
  "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE",
  "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
  "PERFMON", "BPF", "CHECKPOINT_RESTORE",
] as const;

export type CapName = (typeof CAP_NAMES)[number];

/** The bit of a capability in a mask. */
export function capBit(name: CapName): bigint {
  return 1n << BigInt(CAP_NAMES.indexOf(name));
}

export function hasCap(mask: bigint, name: CapName): boolean {
  return (mask & capBit(name)) !== 0n;
}

/** "CAP_SYS_ADMIN, CAP_NET_BIND_SERVICE"; "none" for an empty mask. Bits past the table by number. */
export function capList(mask: bigint): string {
  const out: string[] = [];
  for (let n = 0; n < 64; n++) if (mask & (1n << BigInt(n))) out.push(`CAP_${CAP_NAMES[n] ?? n}`);
  return out.length ? out.join(", ") : "none";
}

/** What /proc/self/status says of this thread's credentials. */
export interface OwnCaps {
  uid: number;
  gid: number;
  effective: bigint;
  permitted: bigint;
  bounding: bigint;
  ambient: bigint;
  noNewPrivs: boolean;
}

/** Parse a /proc/PID[/task/TID]/status text. */
export function parseStatus(text: string): OwnCaps {
  const field = (name: string) => text.match(new RegExp(`^${name}:\\s*(.*)$`, "m"))?.[1]?.trim() ?? "";
  const hex = (name: string) => BigInt(`0x${field(name) || "0"}`);
  return {
    uid: Number(field("Uid").split(/\s+/)[1] ?? -1),
    gid: Number(field("Gid").split(/\s+/)[1] ?? -1),
    effective: hex("CapEff"),
    permitted: hex("CapPrm"),
    bounding: hex("CapBnd"),
    ambient: hex("CapAmb"),
    noNewPrivs: field("NoNewPrivs") === "1",
  };
}

export function ownCaps(): OwnCaps {
  return parseStatus(readFileSync("/proc/self/status", "utf8"));
}

/** This process's credentials now; undefined when /proc cannot tell (then nothing is refused on a guess). */
export function ownCapsIfReadable(): OwnCaps | undefined {
  try {
    return ownCaps();
  } catch {
    return undefined;
  }
}

/** The capabilities nsproxy can use, as "CAP_NET_BIND_SERVICE, CAP_DAC_READ_SEARCH" for a refusal's "running as" part. */
const USED: CapName[] = ["SYS_ADMIN", "NET_BIND_SERVICE", "DAC_READ_SEARCH", "SYS_PTRACE"];

/**
 * Why no tenant could ever attach, or undefined when one may: without CAP_SYS_ADMIN every setns fails
 * with EPERM, whatever the tenants are or will be (a user namespace's own CAP_SYS_ADMIN is not enough
 * for namespaces it does not own either, but that cannot be seen this cheaply: those fail per tenant).
 * `run` and `check` stop on it (exit 2) before anything else looks at capabilities.
 */
export function privilegeProblem(c: OwnCaps | undefined): string | undefined {
  if (c === undefined || hasCap(c.effective, "SYS_ADMIN")) return undefined;
  const held = USED.filter((n) => hasCap(c.effective, n)).map((n) => `CAP_${n}`);
  const who = `uid ${c.uid} with ${held.length ? held.join(", ") : c.effective === 0n ? "no effective capabilities" : "none of the capabilities it uses"}`;
  return (
    `this process lacks CAP_SYS_ADMIN (running as ${who}): setns into a tenant's network namespace needs it, so no tenant could ever attach; ` +
    `${c.uid === 0 ? "" : "run as root (with --user NAME to run as a user after start), or "}grant it (systemd: AmbientCapabilities=CAP_SYS_ADMIN; a container: --cap-add SYS_ADMIN)`
  );
}

/** What the daemon cannot do with the capabilities it holds, for the start-up log (CAP_SYS_ADMIN's absence stops it earlier: privilegeProblem). */
export function capabilityReport(c: OwnCaps): { info: string[]; warn: string[] } {
  const info: string[] = [];
  if (c.uid !== 0 && !hasCap(c.effective, "NET_ADMIN")) {
    info.push(
      "tcp_migrate_req is left as it is in tenant namespaces: writing /proc/sys/net/ipv4/tcp_migrate_req needs CAP_NET_ADMIN, which this daemon does not hold; " +
        "when a tenant is re-attached, connections queued on its old listeners at that moment may be reset (set net.ipv4.tcp_migrate_req=1 in those namespaces to avoid it)",
    );
  }
  return { info, warn: [] };
}
