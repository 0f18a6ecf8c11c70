// Startup probes: a tiny bun process inside each sampled namespace, started before the proxy, that asks every 1 ms
// and prints the wall-clock time (Date.now()) of the first HTTP answer.
import { collectLines, spawn, BUN } from "./setup.ts";

const SCRIPT = (port: number, limitMs: number) => `
  const until = Date.now() + ${limitMs};
  console.log("ready");
  while (Date.now() < until) {
    try {
      const res = await fetch("http://127.0.0.1:${port}/", { keepalive: false });
      const at = Date.now();
      await res.arrayBuffer();
      console.log("answered " + at + " " + res.status);
      process.exit(0);
    } catch {}
    await Bun.sleep(1);
  }
  console.log("gave-up");
  process.exit(1);`;

export interface Probes {
  /** Resolves once every probe is running (spawn the proxy after this). */
  ready: Promise<void>;
  /** Wall-clock ms of each namespace's first answer; rejects if one gave up. */
  answered: Promise<number[]>;
  /** Kill every probe still asking (the proxy failed). */
  kill(): void;
}

export function startProbes(namespaces: string[], port: number, limitMs: number): Probes {
  const readies: Promise<void>[] = [];
  const procs: { kill(sig?: number | NodeJS.Signals): void }[] = [];
  const answers = namespaces.map((ns) => {
    const p = spawn(["ip", "netns", "exec", ns, BUN, "-e", SCRIPT(port, limitMs)], limitMs + 10_000);
    procs.push(p);
    const lines: string[] = [];
    let markReady!: () => void;
    readies.push(new Promise((r) => (markReady = r)));
    const done = collectLines(p.stdout, lines, (l) => l === "ready" && markReady());
    return (async () => {
      await Promise.all([done, p.exited]);
      markReady();
      const hit = lines.find((l) => l.startsWith("answered "));
      if (!hit) throw new Error(`probe in ${ns}: no answer within ${limitMs} ms (${lines.join(" | ")})`);
      return Number(hit.split(" ")[1]);
    })();
  });
  const answered = Promise.all(answers);
  answered.catch(() => {}); // the caller may stop waiting (the proxy died) before this settles
  return { ready: Promise.all(readies).then(() => undefined), answered, kill: () => procs.forEach((p) => p.kill("SIGKILL")) };
}

/** First, middle and last: the sample of namespaces whose first answers bound the startup time. */
export function sample(namespaces: string[]): string[] {
  return [...new Set([namespaces[0]!, namespaces[Math.floor(namespaces.length / 2)]!, namespaces.at(-1)!])];
}
