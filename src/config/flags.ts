// Turns command-line flags into a settings layer, daemon settings and extra tenants; errors name the flag.
import { at, emptyLayer, type Layer } from "./layer.ts";
import { camel, DAEMON_SETTINGS, type DaemonSettings, type Setting, type SettingFlags, TENANT_SETTINGS } from "./settings.ts";
import { dockerSocketOf, parseDiscover, parseNetnsRef } from "./values.ts";
import type { DiscoverSpec } from "./types.ts";

/** Flag values as citty hands them over; undefined (or an empty list) means the flag was not given. */
export type FlagOverrides = SettingFlags & {
  netns?: string[];
  discover?: string[];
};

export interface FlagTenant {
  name: string;
  netns: string;
  /** The REF as typed, for messages. */
  ref: string;
}

export interface FlagConfig {
  layer: Layer;
  daemon: DaemonSettings;
  tenants: FlagTenant[];
  discover: DiscoverSpec[];
  /** `--discover docker[:PATH]`: Engine API sockets whose labelled containers are tenants. */
  docker: string[];
}

export function readFlags(f: FlagOverrides): FlagConfig {
  const layer = emptyLayer();
  for (const s of TENANT_SETTINGS) {
    const flag = `--${s.flag}`;
    if (readFlag(f, s, (v) => ((layer as Record<string, unknown>)[s.field] = v))) layer.at[s.field] = flag;
  }
  const daemon: Record<string, unknown> = {};
  for (const s of DAEMON_SETTINGS) readFlag(f, s, (v) => (daemon[s.field] = v));
  const tenants = (f.netns ?? []).map((ref) => ({ ref, ...at("--netns", () => parseNetnsRef(ref)) }));
  const discover: DiscoverSpec[] = [];
  const docker: string[] = [];
  for (const d of f.discover ?? []) {
    const socket = at("--discover", () => dockerSocketOf(d));
    if (socket !== undefined) docker.push(socket);
    else discover.push(at("--discover", () => parseDiscover(d)));
  }
  return { layer, daemon: daemon as DaemonSettings, tenants, discover, docker };
}

/** Parses one setting's flag when it was given (a repeatable one at least once); false when it was not. */
function readFlag(f: FlagOverrides, s: Setting, set: (value: unknown) => void): boolean {
  const v = (f as Record<string, unknown>)[camel(s.flag)];
  if (v === undefined || (Array.isArray(v) && v.length === 0)) return false;
  set(at(`--${s.flag}`, () => s.kind.flag(v, s.key)));
  return true;
}
