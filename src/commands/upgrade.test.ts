// `nsproxy upgrade` waits for the old daemon to exit: an exited but unreaped one (a zombie) counts as exited.
import { expect, test } from "bun:test";
import { alive } from "./upgrade.ts";

/** A zombie: `sh` starts a child that exits a moment later, once `sh` has become `sleep`, which never reaps it. */
async function zombie(): Promise<{ pid: number; parent: ReturnType<typeof Bun.spawn> }> {
  const parent = Bun.spawn(["sh", "-c", "sleep 0.3 & echo $!; exec sleep 30"], { stdout: "pipe" });
  const reader = parent.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  const pid = Number(new TextDecoder().decode(value).trim());
  for (let i = 0; i < 500 && !/\) Z /.test(await Bun.file(`/proc/${pid}/stat`).text().catch(() => "")); i++) await Bun.sleep(10);
  return { pid, parent };
}

test("a running process is alive; an exited one that its parent has not reaped is not; nor is a pid that is gone", async () => {
  expect(alive(process.pid)).toBe(true);
  const { pid, parent } = await zombie();
  try {
    expect(await Bun.file(`/proc/${pid}/stat`).text()).toMatch(/\) Z /); // the kernel still lists it
    expect(alive(pid)).toBe(false);
  } finally {
    parent.kill("SIGKILL");
    await parent.exited;
  }
  expect(alive(pid)).toBe(false);
});
