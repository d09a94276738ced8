// Charts as inline SVG drawn from the data: stacked bars and a line. Each chart carries a
// text description and <title> tooltips, and the pages show the same figures in tables.
import { s } from "./dom.js";
import { t, tn } from "./i18n.js";

export const PALETTE = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#64748b"];

const WIDTH = 640;
const HEIGHT = 220;
const PAD = { top: 12, right: 12, bottom: 28, left: 40 };

// The top of the y axis: four equal steps of 1, 2, 3, 5, 10, 20… (whole numbers for counts).
function niceMax(value) {
  const wanted = Math.max(value, 1) / 4;
  const magnitude = 10 ** Math.floor(Math.log10(wanted));
  const step = [1, 2, 3, 5, 10].map((m) => m * magnitude).find((candidate) => candidate >= wanted);
  return Math.max(1, step) * 4;
}

function frame(label, description) {
  return s(
    "svg",
    {
      class: "chart",
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-label": label,
      preserveAspectRatio: "xMidYMid meet",
    },
    s("title", {}, label),
    s("desc", {}, description),
  );
}

function axes(svg, xLabels, yMax, yFormat) {
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  for (let i = 0; i <= 4; i += 1) {
    const value = (yMax * i) / 4;
    const y = PAD.top + plotHeight - (plotHeight * i) / 4;
    svg.append(
      s("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: "grid" }),
      s("text", { x: PAD.left - 6, y: y + 4, class: "tick", "text-anchor": "end" }, yFormat(value)),
    );
  }
  const step = (WIDTH - PAD.left - PAD.right) / xLabels.length;
  xLabels.forEach((label, index) => {
    if (xLabels.length > 12 && index % 3 !== 0) return;
    svg.append(
      s(
        "text",
        { x: PAD.left + step * (index + 0.5), y: HEIGHT - 8, class: "tick", "text-anchor": "middle" },
        label,
      ),
    );
  });
  return step;
}

/**
 * Stacked bars: `xLabels` (e.g. hours), `series` = [{name, values: [number per x]}].
 */
export function stackedBars({ label, xLabels, series }) {
  const totals = xLabels.map((_, i) => series.reduce((sum, one) => sum + (one.values[i] || 0), 0));
  const all = totals.reduce((a, b) => a + b, 0);
  const svg = frame(
    label,
    t("{total} in total; {series}", { total: all, series: series.map((one) => one.name).join(", ") }),
  );
  const yMax = niceMax(Math.max(0, ...totals));
  const step = axes(svg, xLabels, yMax, (v) => String(Math.round(v)));
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const barWidth = Math.max(2, step * 0.7);
  xLabels.forEach((x, i) => {
    let base = PAD.top + plotHeight;
    series.forEach((one, index) => {
      const value = one.values[i] || 0;
      if (!value) return;
      const height = (plotHeight * value) / yMax;
      base -= height;
      svg.append(
        s(
          "rect",
          {
            x: PAD.left + step * i + (step - barWidth) / 2,
            y: base,
            width: barWidth,
            height,
            fill: PALETTE[index % PALETTE.length],
            class: "bar",
            dataset: { series: one.name, x },
          },
          s("title", {}, `${x}: ${one.name} ${value}`),
        ),
      );
    });
  });
  return svg;
}

/**
 * A line through `points` = [{x (index into xLabels), y or null}], y from 0 to `yMax`.
 */
export function lineChart({ label, xLabels, points, yMax = 100, yFormat = (v) => `${v}%` }) {
  const known = points.filter((p) => p.y !== null && p.y !== undefined);
  const description = known.length
    ? tn("{n} point, last {last}", "{n} points, last {last}", known.length, {
        last: yFormat(known[known.length - 1].y),
      })
    : t("no data yet");
  const svg = frame(label, description);
  const step = axes(svg, xLabels, yMax, yFormat);
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const at = (p) => [PAD.left + step * (p.x + 0.5), PAD.top + plotHeight - (plotHeight * p.y) / yMax];
  let path = "";
  let previous = null;
  for (const point of points) {
    if (point.y === null || point.y === undefined) {
      previous = null;
      continue;
    }
    const [x, y] = at(point);
    path += `${previous === null ? "M" : "L"}${x.toFixed(1)} ${y.toFixed(1)} `;
    previous = point;
  }
  if (path) svg.append(s("path", { d: path.trim(), class: "line", fill: "none", stroke: PALETTE[0] }));
  for (const point of known) {
    const [x, y] = at(point);
    svg.append(
      s(
        "circle",
        { cx: x, cy: y, r: 3, fill: PALETTE[0], class: "point" },
        s("title", {}, `${xLabels[point.x]}: ${yFormat(point.y)}`),
      ),
    );
  }
  return svg;
}

/** A legend for `names`, colored like the series. */
export function legend(names) {
  return s(
    "svg",
    { class: "legend", viewBox: `0 0 ${WIDTH} 20`, role: "presentation", "aria-hidden": "true" },
    names.map((name, i) => [
      s("rect", { x: PAD.left + i * 110, y: 5, width: 10, height: 10, fill: PALETTE[i % PALETTE.length] }),
      s("text", { x: PAD.left + i * 110 + 14, y: 14, class: "tick" }, name),
    ]),
  );
}
