// The capabilities this process holds (CapEff in /proc/self/status) and what nsproxy needs each one for.
import { readFileSync } from "node:fs";

/** Bits of linux/capability.h that decide what nsproxy can do, and what fails without each. */
export const CAPABILITIES = [
  { name: "CAP_SYS_ADMIN", bit: 21, without: "setns into a tenant's network namespace fails" },
  { name: "CAP_NET_BIND_SERVICE", bit: 10, without: "listen ports below 1024 fail" },
  { name: "CAP_DAC_READ_SEARCH", bit: 2, without: "namespace files in directories only root may read, like docker's exec-root, cannot be opened" },
  { name: "CAP_SYS_PTRACE", bit: 19, without: "/proc/PID/ns/net of another user's process cannot be opened" },
] as const;

export type CapabilityName = (typeof CAPABILITIES)[number]["name"];

/** The effective set from the text of /proc/PID/status; undefined when it has no CapEff line. */
export function parseCapEff(status: string): bigint | undefined {
  const m = status.match(/^CapEff:\s*([0-9a-fA-F]+)\s*$/m);
  return m ? BigInt(`0x${m[1]}`) : undefined;
}

/** This process's effective capabilities now; undefined when /proc cannot tell (then nothing is refused on a guess). */
export function effectiveCapabilities(): bigint | undefined {
  try {
    return parseCapEff(readFileSync("/proc/self/status", "utf8"));
  } catch {
    return undefined;
  }
}

export function holds(eff: bigint, name: CapabilityName): boolean {
  const bit = CAPABILITIES.find((c) => c.name === name)!.bit;
  return ((eff >> BigInt(bit)) & 1n) === 1n;
}

/** "uid 65534 with no effective capabilities", "uid 0 with CAP_NET_BIND_SERVICE, …": what the process runs as. */
function who(uid: number | undefined, eff: bigint): string {
  const held = CAPABILITIES.filter((c) => holds(eff, c.name)).map((c) => c.name);
  return `uid ${uid ?? "?"} with ${held.length ? held.join(", ") : eff === 0n ? "no effective capabilities" : "none of the capabilities it uses"}`;
}

/**
 * Why no tenant could ever attach, or undefined when one may: without CAP_SYS_ADMIN every setns fails
 * with EPERM, whatever the tenants are or will be (a user namespace's own CAP_SYS_ADMIN is not enough
 * for namespaces it does not own either, but that cannot be seen this cheaply: those fail per tenant).
 */
export function privilegeProblem(eff: bigint | undefined, uid = process.getuid?.()): string | undefined {
  if (eff === undefined || holds(eff, "CAP_SYS_ADMIN")) return undefined;
  return (
    `this process lacks CAP_SYS_ADMIN (running as ${who(uid, eff)}): setns into a tenant's network namespace needs it, so no tenant could ever attach; ` +
    `${uid === 0 ? "" : "run as root, or "}grant it (systemd: AmbientCapabilities=CAP_SYS_ADMIN; a container: --cap-add SYS_ADMIN)`
  );
}

/** The other capabilities missing, each with what it stops, for one warning at start; undefined when all are held. */
export function missingCapabilities(eff: bigint | undefined, uid = process.getuid?.()): string | undefined {
  if (eff === undefined) return undefined;
  const missing = CAPABILITIES.filter((c) => !holds(eff, c.name));
  if (missing.length === 0) return undefined;
  return `running as ${who(uid, eff)}; missing ${missing.map((c) => `${c.name} (${c.without})`).join(", ")}`;
}
