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

/**
 * What the daemon can and cannot do with the capabilities it holds, for the start-up log: `warn` lines say what
 * will fail. Root with every capability says nothing; a daemon without CAP_SYS_ADMIN cannot enter a namespace.
 */
export function capabilityReport(c: OwnCaps): { info: string[]; warn: string[] } {
  const info: string[] = [];
  const warn: string[] = [];
  if (!hasCap(c.effective, "SYS_ADMIN")) {
    warn.push(
      `no CAP_SYS_ADMIN (uid ${c.uid}, capabilities: ${capList(c.effective)}): entering tenant namespaces will fail (EPERM); ` +
        `start as root (with --user NAME to run as a user after start), or grant it (systemd: AmbientCapabilities=CAP_SYS_ADMIN)`,
    );
  }
  if (c.uid !== 0 && !hasCap(c.effective, "NET_ADMIN")) {
    info.push(
      "tcp_migrate_req is left as it is in tenant namespaces: writing /proc/sys/net/ipv4/tcp_migrate_req needs CAP_NET_ADMIN, which this daemon does not hold; " +
        "when a tenant is re-attached, connections queued on its old listeners at that moment may be reset (set net.ipv4.tcp_migrate_req=1 in those namespaces to avoid it)",
    );
  }
  return { info, warn };
}
