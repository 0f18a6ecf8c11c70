// The human-readable overview `nsproxy check` prints: one header line, then one line per tenant.
import type { DaemonConfig } from "./types.ts";

export function summarize(cfg: DaemonConfig): string[] {
  const listeners = cfg.tenants.reduce((n, t) => n + t.listen.length, 0);
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const header =
    `${plural(cfg.tenants.length, "tenant")}, ${plural(listeners, "listener")}, ${plural(cfg.workers, "worker")}` +
    `, log ${cfg.logFormat}, access log ${cfg.accessLog ? "on" : "off"}` +
    (cfg.ingressListen.length ? `, ingress on ${cfg.ingressListen.map((l) => l.text).join(", ")}` : "") +
    (cfg.file !== undefined ? ` (from ${cfg.file})` : "");
  // Columns line up so a long list can be scanned by eye.
  const nameWidth = Math.max(0, ...cfg.tenants.map((t) => t.name.length));
  const netnsWidth = Math.max(0, ...cfg.tenants.map((t) => t.netns.length));
  const lines = cfg.tenants.map((t) => {
    const egress = t.upstream
      ? `${t.listen.map((l) => l.text).join(", ")} -> ${t.upstream.text}${t.mode === "tcp" ? " (tcp)" : ""}${t.proxyProtocol ? " (PROXY v2)" : ""}`
      : "";
    const i = t.ingress;
    const backends = i ? [i.backend?.text, i.tlsBackend && `${i.tlsBackend.text} (sni)`].filter(Boolean).join(", ") : "";
    const ingress = i ? `ingress ${i.hosts.join(", ")} -> ${backends} in the namespace` : "";
    return `${t.name.padEnd(nameWidth)}  ${t.netns.padEnd(netnsWidth)}  ${[egress, ingress].filter(Boolean).join("; ")}`;
  });
  return [header, ...lines];
}
