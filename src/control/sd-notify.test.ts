// sd_notify against a unix datagram socket standing in for systemd's $NOTIFY_SOCKET (a path, and an abstract name).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { sdNotify } from "./sd-notify.ts";

const dir = mkdtempSync(`${tmpdir()}/nsproxy-notify-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const havePython = Bun.spawnSync(["sh", "-c", "command -v python3"]).exitCode === 0;

/** A stand-in for systemd: binds `address` (a path, or "@name"), prints the first datagram it receives. */
async function receiver(address: string) {
  const bind = address.startsWith("@") ? `"\\0${address.slice(1)}"` : JSON.stringify(address);
  const script = `import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(${bind})\nprint("bound",flush=True)\ns.settimeout(10)\nsys.stdout.write(s.recv(4096).decode())`;
  const proc = Bun.spawn(["python3", "-c", script], { stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("bound\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("receiver exited");
    text += new TextDecoder().decode(value);
  }
  return async () => {
    let rest = text.slice(text.indexOf("bound\n") + 6);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    await proc.exited;
    return rest;
  };
}

describe.skipIf(!havePython)("sdNotify", () => {
  test("sends READY=1 and MAINPID= as one datagram to a socket path", async () => {
    const path = `${dir}/notify.sock`;
    const received = await receiver(path);
    expect(sdNotify({ MAINPID: 4242, READY: 1 }, path)).toBe(true);
    expect(await received()).toBe("MAINPID=4242\nREADY=1\n");
  });

  test("an abstract socket (@name), as systemd uses", async () => {
    const name = `@nsproxy-test-${process.pid}`;
    const received = await receiver(name);
    expect(sdNotify({ READY: 1 }, name)).toBe(true);
    expect(await received()).toBe("READY=1\n");
  });

  test("no NOTIFY_SOCKET: nothing sent; a socket nobody listens on: false, not a throw", () => {
    expect(sdNotify({ READY: 1 }, "")).toBe(false);
    expect(sdNotify({ READY: 1 }, `${dir}/nobody.sock`)).toBe(false);
  });
});
