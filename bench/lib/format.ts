// Figures for the reports: the median of some rounds, a number in en-US with fixed digits, "median (min–max)", a timed log line.

/** The median of the finite values (the mean of the middle two for an even count); NaN when there are none. */
export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** `x` with exactly `digits` decimals and thousands separators; "—" for a figure that is missing or not finite. */
export function fmt(x: number | undefined, digits = 0): string {
  return x === undefined || !Number.isFinite(x) ? "—" : x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** "median (min–max)" of a figure over the rounds; one round is just its figure. */
export function spread(xs: number[], digits = 0): string {
  const s = xs.filter((x) => Number.isFinite(x));
  if (s.length === 0) return "—";
  if (s.length === 1) return fmt(s[0], digits);
  return `${fmt(median(s), digits)} (${fmt(Math.min(...s), digits)}–${fmt(Math.max(...s), digits)})`;
}

const started = performance.now();

/** Seconds since the bench started, for progress lines on stderr. */
export const elapsedS = () => (performance.now() - started) / 1000;

/** A progress line on stderr, stamped with the seconds since the bench started. */
export const log = (s: string) => console.error(`[${elapsedS().toFixed(1)} s] ${s}`);
