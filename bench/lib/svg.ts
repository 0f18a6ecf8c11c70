// Line charts as small standalone SVG files (no dependency): a log-scale x for N, a linear y from 0, a legend, notes.

export interface Series {
  name: string;
  color: string;
  dashed?: boolean;
  /** [x, y]; points whose y is not finite are left out (the line skips them). */
  points: [number, number][];
}

export interface Chart {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Lines of small print under the plot (what is missing and why). */
  notes?: string[];
}

const W = 720;
const PLOT = { left: 72, top: 58, width: 430, height: 260 };
const LEGEND_X = PLOT.left + PLOT.width + 24;

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const num = (x: number) => x.toLocaleString("en-US", { maximumFractionDigits: x < 10 ? 1 : 0 });

/** A step of 1, 2 or 5 × 10^k that cuts [0, max] into about five parts. */
function niceStep(max: number): number {
  const raw = max / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
}

function text(x: number, y: number, s: string, attrs = ""): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`;
}

export function lineChart(c: Chart): string {
  const pts = c.series.flatMap((s) => s.points).filter(([x, y]) => x > 0 && Number.isFinite(y));
  const xs = pts.map(([x]) => x);
  const lo = Math.floor(Math.log10(Math.min(...xs, 1)));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...xs, 10))));
  const step = niceStep(Math.max(...pts.map(([, y]) => y), 1e-9));
  const yMax = Math.ceil(Math.max(...pts.map(([, y]) => y), step) / step) * step;
  const px = (x: number) => PLOT.left + ((Math.log10(x) - lo) / (hi - lo)) * PLOT.width;
  const py = (y: number) => PLOT.top + PLOT.height - (y / yMax) * PLOT.height;
  const out: string[] = [];
  for (let y = 0; y <= yMax + step / 2; y += step) {
    out.push(`<line x1="${PLOT.left}" x2="${PLOT.left + PLOT.width}" y1="${py(y).toFixed(1)}" y2="${py(y).toFixed(1)}" stroke="#ddd"/>`);
    out.push(text(PLOT.left - 8, py(y) + 4, num(y), `text-anchor="end"`));
  }
  for (let k = lo; k <= hi; k++) {
    const x = px(10 ** k);
    out.push(`<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${PLOT.top}" y2="${PLOT.top + PLOT.height}" stroke="#eee"/>`);
    out.push(text(x, PLOT.top + PLOT.height + 18, num(10 ** k), `text-anchor="middle"`));
  }
  out.push(`<rect x="${PLOT.left}" y="${PLOT.top}" width="${PLOT.width}" height="${PLOT.height}" fill="none" stroke="#444"/>`);
  out.push(text(PLOT.left + PLOT.width / 2, PLOT.top + PLOT.height + 40, c.xLabel, `text-anchor="middle"`));
  out.push(text(18, PLOT.top + PLOT.height / 2, c.yLabel, `text-anchor="middle" transform="rotate(-90 18 ${PLOT.top + PLOT.height / 2})"`));
  c.series.forEach((s, i) => {
    const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
    const shown = s.points.filter(([x, y]) => x > 0 && Number.isFinite(y));
    if (shown.length > 1) out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${dash} points="${shown.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ")}"/>`);
    for (const [x, y] of shown) out.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3.5" fill="${s.color}"><title>${esc(`${s.name}, N=${num(x)}: ${num(y)}`)}</title></circle>`);
    const ly = PLOT.top + 10 + i * 22;
    out.push(`<line x1="${LEGEND_X}" x2="${LEGEND_X + 28}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    out.push(`<circle cx="${LEGEND_X + 14}" cy="${ly}" r="3.5" fill="${s.color}"/>`);
    out.push(text(LEGEND_X + 36, ly + 4, s.name));
  });
  const notes = c.notes ?? [];
  notes.forEach((n, i) => out.push(text(PLOT.left, PLOT.top + PLOT.height + 62 + i * 16, n, `font-size="11" fill="#555"`)));
  const h = PLOT.top + PLOT.height + 56 + notes.length * 16 + 8;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif" font-size="12">
<rect width="${W}" height="${h}" fill="#fff"/>
${text(PLOT.left, 22, c.title, `font-size="15" font-weight="bold"`)}
${c.subtitle ? text(PLOT.left, 40, c.subtitle, `font-size="11" fill="#555"`) : ""}
${out.join("\n")}
</svg>
`;
}
