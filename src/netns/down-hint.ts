// What to tell an operator whose listen address cannot be reached inside its namespace (its interface is down).

/** The command that brings a namespace's loopback up: `ip -n NAME` for an `ip netns` name, else nsenter on the file. */
export function loUpCommand(netns: string): string {
  const m = /^(?:\/var)?\/run\/netns\/([^/]+)$/.exec(netns);
  return m ? `ip -n ${m[1]} link set lo up` : `nsenter --net=${netns} ip link set lo up`;
}

/**
 * The warning for a listen address that a client in the namespace has no route to (ENETUNREACH from a
 * route lookup there): the listener binds, yet every connection fails. Undefined for any other outcome.
 */
export function unreachableWarning(listen: string, netns: string, errno: string): string | undefined {
  if (errno !== "ENETUNREACH") return undefined;
  return `listen ${listen}: no route to it inside ${netns} (ENETUNREACH): its interface is down, so every client there fails to connect; a new ip netns namespace has lo down: ${loUpCommand(netns)}`;
}
