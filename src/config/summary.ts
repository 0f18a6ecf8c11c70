// The human-readable overview `nsproxy check` prints: one header line, then one line per tenant.
import type { DaemonConfig } from "./types.ts";

export function summarize(cfg: DaemonConfig): string[] {
  const listeners = cfg.tenants.reduce((n, t) => n + t.listen.length, 0);
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const header =
    `${plural(cfg.tenants.length, "tenant")}, ${plural(listeners, "listener")}, ${plural(cfg.workers, "worker")}` +
    `, log ${cfg.logFormat}, access log ${cfg.accessLog ? "on" : "off"}` +
    (cfg.file !== undefined ? ` (from ${cfg.file})` : "");
  // Columns line up so a long list can be scanned by eye.
  const nameWidth = Math.max(0, ...cfg.tenants.map((t) => t.name.length));
  const netnsWidth = Math.max(0, ...cfg.tenants.map((t) => t.netns.length));
  const lines = cfg.tenants.map(
    (t) =>
      `${t.name.padEnd(nameWidth)}  ${t.netns.padEnd(netnsWidth)}  ` +
      `${t.listen.map((l) => l.text).join(", ")} -> ${t.upstream?.text ?? "(ingress only)"}${t.mode === "tcp" ? " (tcp)" : ""}${t.proxyProtocol ? " (PROXY v2)" : ""}`,
  );
  return [header, ...lines];
}
