// Reads a namespace's /proc/net/tcp{,6} table: which listening sockets hold a port, by inode.
import { hostsOverlap } from "../config/overlap.ts";

const LISTEN = "0A";

/** A local_address field's host: 8 hex digits (IPv4) or 32 (IPv6), each 32-bit word in the kernel's byte order (little-endian here). */
export function tableHost(hex: string): string | undefined {
  if (!/^(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{32})$/.test(hex)) return undefined;
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = parseInt(hex.slice(w, w + 8), 16);
    bytes.push(word & 255, (word >>> 8) & 255, (word >>> 16) & 255, word >>> 24);
  }
  if (bytes.length === 4) return bytes.join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(":");
}

/**
 * Inodes of the sockets in `table` (the text of /proc/net/tcp or tcp6 read in one namespace) that listen
 * on `port` at an address overlapping `host`: those that keep a listener on host:port from being alone.
 */
export function listenersOn(table: string, host: string, port: number): number[] {
  const out: number[] = [];
  for (const line of table.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== LISTEN) continue;
    const [addrHex, portHex] = f[1]!.split(":");
    if (parseInt(portHex ?? "", 16) !== port) continue;
    const at = tableHost(addrHex ?? "");
    const inode = Number(f[9]);
    if (at !== undefined && Number.isSafeInteger(inode) && inode > 0 && hostsOverlap(at, host)) out.push(inode);
  }
  return out;
}
