// The capability reading of /proc/self/status and the start-up refusal and warning built from it.
import { describe, expect, test } from "bun:test";
import { effectiveCapabilities, holds, missingCapabilities, parseCapEff, privilegeProblem } from "./capabilities.ts";

const status = (eff: string) => `Name:\tnsproxy\nCapInh:\t0000000000000000\nCapPrm:\t${eff}\nCapEff:\t${eff}\nCapBnd:\t000001ffffffffff\n`;
const ALL = parseCapEff(status("000001ffffffffff"))!;
const SYS_ADMIN_ONLY = parseCapEff(status("0000000000200000"))!;
/** Everything but CAP_SYS_ADMIN: root in a container started without --cap-add SYS_ADMIN, or `setpriv --bounding-set -sys_admin`. */
const ROOT_WITHOUT = parseCapEff(status("000001fffedfffff"))!;

describe("capabilities", () => {
  test("CapEff is read as a bit set; bit 21 is CAP_SYS_ADMIN", () => {
    expect(holds(SYS_ADMIN_ONLY, "CAP_SYS_ADMIN")).toBe(true);
    expect(holds(SYS_ADMIN_ONLY, "CAP_NET_BIND_SERVICE")).toBe(false);
    expect(holds(ROOT_WITHOUT, "CAP_SYS_ADMIN")).toBe(false);
    expect(holds(ROOT_WITHOUT, "CAP_NET_BIND_SERVICE")).toBe(true);
    expect(parseCapEff("Name:\tx\n")).toBeUndefined();
    // This process (the tests run as root) holds it.
    if (process.getuid?.() === 0) expect(privilegeProblem(effectiveCapabilities())).toBeUndefined();
  });

  test("without CAP_SYS_ADMIN: the refusal names the capability, what needs it, who runs, and the ways out", () => {
    expect(privilegeProblem(0n, 65534)).toBe(
      "this process lacks CAP_SYS_ADMIN (running as uid 65534 with no effective capabilities): setns into a tenant's network namespace needs it, " +
        "so no tenant could ever attach; run as root, or grant it (systemd: AmbientCapabilities=CAP_SYS_ADMIN; a container: --cap-add SYS_ADMIN)",
    );
    // Root with the capability dropped (a container without it): "run as root" would be no advice.
    const root = privilegeProblem(ROOT_WITHOUT, 0);
    expect(root).toContain("(running as uid 0 with CAP_NET_BIND_SERVICE, CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE)");
    expect(root).toContain("so no tenant could ever attach; grant it (systemd:");
    expect(privilegeProblem(SYS_ADMIN_ONLY, 65534)).toBeUndefined();
    expect(privilegeProblem(ALL, 0)).toBeUndefined();
    // /proc unreadable: no refusal on a guess.
    expect(privilegeProblem(undefined, 65534)).toBeUndefined();
  });

  test("with CAP_SYS_ADMIN alone: one line naming each missing capability and what fails without it; nothing when all are held", () => {
    expect(missingCapabilities(SYS_ADMIN_ONLY, 65534)).toBe(
      "running as uid 65534 with CAP_SYS_ADMIN; missing CAP_NET_BIND_SERVICE (listen ports below 1024 fail), " +
        "CAP_DAC_READ_SEARCH (namespace files in directories only root may read, like docker's exec-root, cannot be opened), " +
        "CAP_SYS_PTRACE (/proc/PID/ns/net of another user's process cannot be opened)",
    );
    expect(missingCapabilities(ALL, 0)).toBeUndefined();
    expect(missingCapabilities(ALL, 65534)).toBeUndefined();
  });
});
