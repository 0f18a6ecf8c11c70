// Entry of the CNI plugin mode (CNI_COMMAND set): stdin in, one JSON answer out, an exit code; nothing else starts.
import { AdminClient } from "../admin/client.ts";
import { runPlugin } from "./plugin.ts";

/** A runtime waits on its plugins: an admin call that hangs longer than this fails the command. */
const ADMIN_TIMEOUT_MS = 20_000;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function cniMain(): Promise<number> {
  // A runtime always sends the config; a terminal (someone trying it by hand) is not waited on.
  const stdin = process.stdin.isTTY ? "" : await readStdin();
  const out = await runPlugin(process.env, stdin, (socket) => new AdminClient(socket, ADMIN_TIMEOUT_MS));
  if (out.note) process.stderr.write(`${out.note}\n`);
  process.stdout.write(out.stdout);
  return out.exitCode;
}
