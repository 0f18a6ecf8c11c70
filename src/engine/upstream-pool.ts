// Idle upstream connections of one tenant in one worker, handed to its next client connection: bounded, newest first, expiring.
import type { Duplex, UpstreamEvents } from "./types.ts";

/** Who an upstream connection reports to: the client connection using it, or the pool keeping it idle. */
export interface LegOwner {
  upOpen(leg: Leg, sock: Duplex): void;
  upData(leg: Leg, data: Uint8Array): void;
  upDrain(leg: Leg): void;
  upClosed(leg: Leg, error?: string): void;
}

/**
 * One upstream connection's events. Once the connection is let go, its late events are ignored: Bun
 * reports the close of a socket we terminate synchronously, inside terminate(), and a close reported
 * for an old connection must never be taken for the next request's. Its owner changes as it moves
 * between a client connection and the pool.
 */
export class Leg implements UpstreamEvents {
  live = true;
  sock: Duplex | undefined;
  /** When it went idle in the pool. */
  idleSince = 0;
  constructor(public owner: LegOwner) {}
  onOpen(sock: Duplex): void {
    if (!this.live) {
      sock.terminate();
      return;
    }
    this.sock = sock;
    this.owner.upOpen(this, sock);
  }
  onData(data: Uint8Array): void {
    if (this.live) this.owner.upData(this, data);
  }
  onDrain(): void {
    if (this.live) this.owner.upDrain(this);
  }
  onClose(error?: string): void {
    if (!this.live) return;
    this.live = false;
    this.owner.upClosed(this, error);
  }
  /** Close it; its close is not news to anyone. */
  kill(): void {
    this.live = false;
    this.sock?.terminate();
  }
}

/**
 * A connection is given back only after a complete response that allowed keep-alive, with nothing
 * queued either way. Kept at most `idleMs` (shorter than the usual upstream keep-alive timeouts of 5 s
 * and more, so the upstream rarely closes one as it is taken); a request that meets a connection
 * closed anyway is retried once on a fresh one when it had no body and is idempotent, or none of it
 * left (see ProxyConn.upClosed).
 */
export class UpstreamPool implements LegOwner {
  private idle: Leg[] = [];

  /**
   * `budget`: an idle connection holds a descriptor after its client connection (whose reservation
   * covered it) is gone, so it takes one from the process's budget, or is closed.
   */
  constructor(
    private readonly budget?: { take(): boolean; give(): void },
    private readonly max = 8,
    private readonly idleMs = 4000,
  ) {}

  get size(): number {
    return this.idle.length;
  }

  /** The most recently used idle connection still fresh, or undefined. */
  take(now: number): Leg | undefined {
    for (;;) {
      const leg = this.idle.pop();
      if (!leg) return undefined;
      this.budget?.give();
      if (leg.live && leg.sock && now - leg.idleSince < this.idleMs) return leg;
      leg.kill();
    }
  }

  give(leg: Leg, now: number): void {
    if (!leg.live || !leg.sock || this.idle.length >= this.max || (this.budget && !this.budget.take())) {
      leg.kill();
      return;
    }
    leg.owner = this;
    leg.idleSince = now;
    this.idle.push(leg);
  }

  /** Close what has been idle too long (called by the worker's sweep). */
  sweep(now: number): void {
    if (this.idle.length === 0) return;
    const keep: Leg[] = [];
    for (const leg of this.idle) {
      if (leg.live && now - leg.idleSince < this.idleMs) keep.push(leg);
      else {
        leg.kill();
        this.budget?.give();
      }
    }
    this.idle = keep;
  }

  closeAll(): void {
    for (const leg of this.idle) {
      leg.kill();
      this.budget?.give();
    }
    this.idle = [];
  }

  upOpen(leg: Leg): void {
    this.remove(leg);
    leg.kill();
  }

  /** Bytes on an idle connection answer nothing we asked: it is out of step; drop it. */
  upData(leg: Leg): void {
    this.remove(leg);
    leg.kill();
  }

  upDrain(): void {}

  upClosed(leg: Leg): void {
    this.remove(leg);
  }

  private remove(leg: Leg): void {
    const i = this.idle.indexOf(leg);
    if (i < 0) return;
    this.idle.splice(i, 1);
    this.budget?.give();
  }
}
