// Unit tests for the down-interface warning: the command it offers fits how the namespace is named.
import { describe, expect, test } from "bun:test";
import { loUpCommand, unreachableWarning } from "./down-hint.ts";

describe("down-interface warning", () => {
  test("ip -n for an ip netns name, nsenter for any other namespace file", () => {
    expect(loUpCommand("/run/netns/acme")).toBe("ip -n acme link set lo up");
    expect(loUpCommand("/var/run/netns/acme")).toBe("ip -n acme link set lo up");
    expect(loUpCommand("/proc/4242/ns/net")).toBe("nsenter --net=/proc/4242/ns/net ip link set lo up");
    expect(loUpCommand("/var/run/docker/netns/1a2b")).toBe("nsenter --net=/var/run/docker/netns/1a2b ip link set lo up");
  });

  test("only ENETUNREACH warns", () => {
    expect(unreachableWarning("127.0.0.1:8080", "/run/netns/acme", "ENETUNREACH")).toBe(
      "listen 127.0.0.1:8080: no route to it inside /run/netns/acme (ENETUNREACH): its interface is down, so every client there fails to connect; a new ip netns namespace has lo down: ip -n acme link set lo up",
    );
    expect(unreachableWarning("127.0.0.1:8080", "/run/netns/acme", "EADDRNOTAVAIL")).toBeUndefined();
  });
});
