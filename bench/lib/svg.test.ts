// The bench's charts place N on a log scale, leave out missing figures and escape their text.
import { expect, test } from "bun:test";
import { lineChart } from "./svg.ts";

const circles = (svg: string) => [...svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)" r="3.5" fill="#111"><title>/g)].map((m) => [Number(m[1]), Number(m[2])]);

test("N = 1, 10, 100, 1000 are evenly spaced and y grows upward from 0", () => {
  const svg = lineChart({ title: "t", xLabel: "N", yLabel: "y", series: [{ name: "a", color: "#111", points: [[1, 0], [10, 10], [100, 20], [1000, 40]] }] });
  const at = circles(svg);
  expect(at).toHaveLength(4);
  const gaps = at.slice(1).map(([x], i) => x! - at[i]![0]!);
  for (const g of gaps) expect(g).toBeCloseTo(gaps[0]!, 0);
  expect(gaps[0]).toBeGreaterThan(50);
  expect(at[1]![1]!).toBeLessThan(at[0]![1]!); // higher value, smaller SVG y
  expect(at[3]![1]! - at[2]![1]!).toBeCloseTo(2 * (at[2]![1]! - at[1]![1]!), 0);
});

test("a point without a figure (a proxy that did not start) is left out, not drawn at 0", () => {
  const svg = lineChart({ title: "t", xLabel: "N", yLabel: "y", series: [{ name: "a", color: "#111", points: [[1, 5], [10_000, NaN]] }] });
  expect(circles(svg)).toHaveLength(1);
  expect(svg).not.toContain("NaN");
});

test("text is escaped and the legend names every series", () => {
  const svg = lineChart({ title: "a < b & c", xLabel: "N", yLabel: "y", notes: ["HAProxy <10k>"], series: [{ name: "nsproxy", color: "#111", points: [[1, 1]] }, { name: "HAProxy", color: "#222", dashed: true, points: [[1, 2]] }] });
  expect(svg).toContain("a &lt; b &amp; c");
  expect(svg).toContain("HAProxy &lt;10k&gt;");
  expect(svg).toContain(">nsproxy</text>");
  expect(svg).toContain(">HAProxy</text>");
  expect(svg).toContain('stroke-dasharray="6 4"');
});
