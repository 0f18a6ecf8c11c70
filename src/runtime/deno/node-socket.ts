// A node:net / node:tls socket (under Deno) as the engine's Duplex: for what Deno's own API cannot do (adopt an fd, skip certificate checks).
import type { Socket } from "node:net";
import type { Duplex, UpstreamEvents } from "../../engine/types.ts";
import { reason } from "./socket.ts";

/**
 * write() takes the whole chunk unless node's buffer is over its high-water mark (then nothing, and
 * `drain` follows); node's end() is FIN, so end() here also destroys once it has gone (Bun's end()
 * closes both ways). Every buffer handed to the engine is a copy: node may pool what it reads into.
 */
export class NodeSocket implements Duplex {
  private gone = false;

  constructor(
    private readonly s: Socket,
    events: UpstreamEvents,
  ) {
    s.on("data", (d: Uint8Array) => events.onData(new Uint8Array(d)));
    s.on("drain", () => events.onDrain());
    s.on("end", () => (events.onEnd ? events.onEnd() : this.end()));
    s.on("error", (err: Error) => this.closed(events, reason(err)));
    s.on("close", () => this.closed(events));
  }

  private closed(events: UpstreamEvents, error?: string): void {
    if (this.gone) return;
    this.gone = true;
    events.onClose(error);
  }

  write(data: Uint8Array): number {
    if (this.gone || this.s.writableEnded) return 0;
    if (this.s.writableNeedDrain) return 0;
    this.s.write(data);
    return data.length;
  }

  end(): void {
    if (this.gone) return;
    this.s.once("finish", () => this.s.destroy());
    this.s.end();
  }

  shutdown(): void {
    if (!this.gone) this.s.end();
  }

  terminate(): void {
    this.s.destroy();
  }

  pause(): void {
    this.s.pause();
  }

  resume(): void {
    this.s.resume();
  }
}
