// Unit tests of how the docker provider is asked for: --discover docker[:PATH] and [[discover]] docker = …
import { describe, expect, test } from "bun:test";
import { ConfigError } from "../errors.ts";
import { loadConfig } from "../config/load.ts";

const base = { listen: ["127.0.0.1:8080"], upstream: "http://127.0.0.1:9000" };

describe("docker discovery in the configuration", () => {
  test("--discover docker is the default socket, docker:PATH another; directories stay directories", () => {
    const c = loadConfig({ flags: { ...base, discover: ["docker", "docker:/run/podman/podman.sock", "/run/netns=web-*"] } });
    expect(c.docker).toEqual(["/var/run/docker.sock", "/run/podman/podman.sock"]);
    expect(c.discover).toEqual([{ dir: "/run/netns", glob: "web-*" }]);
  });

  test("[[discover]] docker = PATH (or true for the default), merged with the flags without duplicates", () => {
    const source = '[[discover]]\ndocker = "/run/podman/podman.sock"\n\n[[discover]]\ndocker = true\n\n[[discover]]\ndir = "/run/netns"\n';
    const c = loadConfig({ source, flags: { ...base, discover: ["docker"] } });
    expect(c.docker).toEqual(["/run/podman/podman.sock", "/var/run/docker.sock"]);
    expect(c.discover).toEqual([{ dir: "/run/netns", glob: "*" }]);
  });

  test("a relative socket, or docker beside dir, is refused naming where", () => {
    expect(() => loadConfig({ flags: { ...base, discover: ["docker:run/docker.sock"] } })).toThrow(/--discover.*absolute path/);
    const both = '[[discover]]\ndocker = true\ndir = "/run/netns"\n';
    const err = (() => {
      try {
        loadConfig({ source: both, flags: base });
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(err?.message).toMatch(/<config>:2: discover.0.docker: .*either docker .* or dir and glob/);
    expect(() => loadConfig({ source: '[[discover]]\ndocker = "docker.sock"\n', flags: base })).toThrow(/docker must be an absolute socket path/);
  });
});
