// A first-in-first-out limit on namespace descriptors held open by attaches waiting for the workers.
export class OpenLimit {
  private open = 0;
  /** Waiting takers, first in first out (a head index: shift() is O(n) with 10,000 waiting). */
  private waiting: (() => void)[] = [];
  private head = 0;

  constructor(private readonly max: number) {}

  async take(): Promise<void> {
    if (this.open < this.max) {
      this.open++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Give a taken place back: to the first waiting, else free. */
  give(): void {
    const next = this.waiting[this.head];
    if (next) this.head++;
    if (this.head === this.waiting.length) {
      this.waiting = [];
      this.head = 0;
    }
    if (next) next();
    else this.open--;
  }
}
