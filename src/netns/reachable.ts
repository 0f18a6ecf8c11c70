// Is a listen address reachable by the clients inside its namespace? A route lookup there, for check and tenant ls.
import type { ListenAddr } from "../config/types.ts";
import { NsproxyError } from "../errors.ts";
import { unreachableWarning } from "./down-hint.ts";
import { closeFd, errnoName, openNetns, openOwnNetns, routeInsideRaw, STRANDED } from "./native.ts";

/**
 * Warnings for the addresses of `listen` that no client inside `netns` has a route to (their interface is
 * down: they bind, yet every connection fails). Only a one-shot command calls this: the C call enters the
 * namespace on this thread and comes back before any JavaScript runs. A namespace this process cannot open
 * or enter (no privilege, gone) gives no warning: the caller says that its own way.
 */
export function unreachableListens(netns: string, listen: ListenAddr[]): string[] {
  if (listen.length === 0) return [];
  let fd: number;
  try {
    fd = openNetns(netns);
  } catch {
    return [];
  }
  const home = openOwnNetns();
  try {
    const out: string[] = [];
    for (const l of listen) {
      const rc = routeInsideRaw(fd, home, l.host, l.port);
      if (rc === STRANDED) throw new NsproxyError(`could not return from ${netns} to this process's own namespace`);
      const warning = rc < 0 ? unreachableWarning(l.text, netns, errnoName(-rc)) : undefined;
      if (warning) out.push(warning);
    }
    return out;
  } finally {
    closeFd(home);
    closeFd(fd);
  }
}
