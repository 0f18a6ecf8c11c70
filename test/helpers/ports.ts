// Ports free right now on the host's loopback, for listeners a test cannot ask for port 0 (the daemon's, HAProxy's).

/** Ports free right now, distinct, one per host (each held until all are taken, then released). */
export function freePorts(hosts: string[]): number[] {
  const ls = hosts.map((hostname) => Bun.listen({ hostname, port: 0, socket: { data() {} } }));
  const ports = ls.map((l) => l.port);
  for (const l of ls) l.stop(true);
  return ports;
}

/** One free port on `hostname`. */
export const freePort = (hostname = "127.0.0.1"): number => freePorts([hostname])[0]!;
