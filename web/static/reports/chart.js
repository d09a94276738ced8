// A report's chart as inline SVG, drawn from its columns, rows and the API's chart spec
// ({kind: bar|line|funnel, x, y: [keys], series: key|null}): bars grouped per y column, or
// stacked per `series` (volume per day by channel); lines; a funnel of horizontal bars
// shrinking per stage with the share of the start. Each chart is one image for assistive
// technology (role="img", an aria-label summing it up), every bar and point has a <title>
// tooltip, and the table under it holds the same figures.
import { h, s } from "../common/dom.js";
import { formatNumber, t } from "../common/i18n.js";
import { PALETTE } from "../common/charts.js";
import { cellText, columnLabel, formatDay, formatShare, formatValue, isTotal, numeric } from "./format.js";

const WIDTH = 760;
const HEIGHT = 300;
const PAD = { top: 28, right: 16, bottom: 48, left: 84 };
// About how wide a character of the 11px tick font is, to shorten labels that would overlap.
const CHAR = 6.2;

const color = (index) => PALETTE[index % PALETTE.length];

function shorten(text, room) {
  const most = Math.max(3, Math.floor(room / CHAR));
  return text.length > most ? `${text.slice(0, most - 1)}…` : text;
}

// The top of the y axis: four equal steps of 1, 2, 5 or 10 times a power of ten (whole
// numbers for counts); shares end at 100 %, durations step by whole minutes, hours or days.
const DURATION_STEPS = [15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

function niceMax(value, kind) {
  if (kind === "share") return 1;
  const wanted = Math.max(value, 1) / 4;
  if (kind === "seconds") {
    const step = DURATION_STEPS.find((candidate) => candidate >= wanted);
    return 4 * (step || Math.ceil(wanted / 86400) * 86400);
  }
  const magnitude = 10 ** Math.floor(Math.log10(wanted));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((candidate) => candidate >= wanted);
  return (kind === "days" ? step : Math.max(1, step)) * 4;
}

// A y axis tick: amounts of money without their cents.
function tick(kind, value) {
  return kind === "money" ? formatNumber(Math.round(value)) : formatValue(kind, value);
}

function frame(label, height) {
  return s("svg", {
    class: "chart",
    viewBox: `0 0 ${WIDTH} ${height}`,
    role: "img",
    "aria-label": label,
    preserveAspectRatio: "xMidYMid meet",
  });
}

/** The y axis (grid, ticks, its title on top) and the x axis' labels and title; the width
 *  of one x step. */
function axes(svg, { xLabels, xTitle, yTitle, yMax, kind }) {
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  for (let i = 0; i <= 4; i += 1) {
    const value = (yMax * i) / 4;
    const y = PAD.top + plotHeight - (plotHeight * i) / 4;
    svg.append(
      s("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: "grid" }),
      s(
        "text",
        { x: PAD.left - 6, y: y + 4, class: "tick", "text-anchor": "end" },
        tick(kind, value),
      ),
    );
  }
  svg.append(s("text", { x: PAD.left, y: 14, class: "axis-title" }, yTitle));
  const step = (WIDTH - PAD.left - PAD.right) / Math.max(1, xLabels.length);
  // Every label when they fit, else every second, third… one.
  const every = Math.max(1, Math.ceil((xLabels.length * 60) / (WIDTH - PAD.left - PAD.right)));
  xLabels.forEach((label, index) => {
    if (index % every !== 0) return;
    svg.append(
      s(
        "text",
        { x: PAD.left + step * (index + 0.5), y: HEIGHT - PAD.bottom + 16, class: "tick", "text-anchor": "middle" },
        shorten(label, step * every - 4),
      ),
    );
  });
  svg.append(
    s(
      "text",
      { x: PAD.left + (WIDTH - PAD.left - PAD.right) / 2, y: HEIGHT - 8, class: "axis-title", "text-anchor": "middle" },
      xTitle,
    ),
  );
  return step;
}

function legend(names) {
  return h(
    "ul",
    { class: "chart-legend" },
    names.map((name, index) =>
      h("li", {}, h("span", { class: `swatch swatch-${index % PALETTE.length}`, "aria-hidden": "true" }), name),
    ),
  );
}

function columnsByKey(report) {
  return new Map(report.columns.map((column) => [column.key, column]));
}

/** The x values in the order of the rows, and each one's label. */
function xAxis(rows, xColumn) {
  const keys = [];
  const labels = new Map();
  for (const row of rows) {
    const key = String(row[xColumn.key]);
    if (labels.has(key)) continue;
    keys.push(key);
    labels.set(
      key,
      xColumn.kind === "date"
        ? formatDay(row[xColumn.key], { day: "numeric", month: "short" })
        : cellText(xColumn, row),
    );
  }
  return { keys, labels: keys.map((key) => labels.get(key)) };
}

function bars(report, columns) {
  const chart = report.chart;
  const xColumn = columns.get(chart.x);
  const measures = chart.y.map((key) => columns.get(key)).filter(Boolean);
  // The total row would dwarf the rows it sums; the table shows it.
  const rows = report.rows.filter((row) => !isTotal(row));
  const axis = xAxis(rows, xColumn);
  const keys = axis.keys;
  let labels = axis.labels;
  const kind = measures[0].kind;
  let groups; // per x: [{name, value, index (its colour)}] drawn side by side, or stacked
  let names;
  let stacked = false;
  if (chart.series && columns.get(chart.series)) {
    const seriesColumn = columns.get(chart.series);
    const measure = measures[0];
    const seriesKeys = [...new Set(rows.map((row) => String(row[chart.series])))];
    const seriesLabels = seriesKeys.map((key) =>
      cellText(seriesColumn, rows.find((row) => String(row[chart.series]) === key)),
    );
    const sums = new Map();
    for (const row of rows) {
      const at = `${row[chart.x]}\u0000${row[chart.series]}`;
      sums.set(at, (sums.get(at) || 0) + numeric(row[measure.key]));
    }
    groups = keys.map((x) =>
      seriesKeys.map((key, index) => ({ name: seriesLabels[index], value: sums.get(`${x}\u0000${key}`) || 0, index })),
    );
    names = seriesLabels;
    stacked = true;
  } else {
    // A group per row (two operators may have the same name).
    labels = rows.map((row) => xAxis([row], xColumn).labels[0]);
    if (new Set(labels).size < labels.length) {
      // Rows the x column does not tell apart (a source's campaigns): their other text too.
      const others = report.columns.filter((column) => column.kind === "text" && column.key !== xColumn.key);
      labels = rows.map((row, i) =>
        [labels[i], ...others.map((column) => row[column.key]).filter(Boolean)].join(" · "),
      );
    }
    groups = rows.map((row) =>
      measures.map((measure, index) => ({ name: columnLabel(measure), value: numeric(row[measure.key]), index })),
    );
    names = measures.map(columnLabel);
  }
  const heights = groups.map((group) =>
    stacked ? group.reduce((sum, one) => sum + one.value, 0) : Math.max(0, ...group.map((one) => one.value)),
  );
  const yMax = niceMax(Math.max(0, ...heights), kind);
  const yTitle = measures.length === 1 || stacked ? columnLabel(measures[0]) : "";
  const xTitle = columnLabel(xColumn);
  const svg = frame(summary(report, { names, labels, groups, stacked, kind, measures }), HEIGHT);
  const step = axes(svg, { xLabels: labels, xTitle, yTitle, yMax, kind });
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const groupWidth = Math.max(2, step * 0.72);
  groups.forEach((group, xi) => {
    const left = PAD.left + step * xi + (step - groupWidth) / 2;
    let base = PAD.top + plotHeight;
    const barWidth = stacked ? groupWidth : groupWidth / group.length;
    group.forEach((one, i) => {
      if (!one.value) return;
      const height = (plotHeight * one.value) / yMax;
      const y = stacked ? base - height : PAD.top + plotHeight - height;
      if (stacked) base -= height;
      svg.append(
        s(
          "rect",
          {
            x: stacked ? left : left + barWidth * i,
            y,
            width: Math.max(1, barWidth - (stacked ? 0 : 1)),
            height,
            fill: color(one.index),
            class: "bar",
            dataset: { x: labels[xi], series: one.name },
          },
          s("title", {}, `${labels[xi]} · ${one.name}: ${formatValue(kind, one.value)}`),
        ),
      );
    });
  });
  return { svg, names, legend: stacked || names.length > 1 };
}

function lines(report, columns) {
  const chart = report.chart;
  const xColumn = columns.get(chart.x);
  const measures = chart.y.map((key) => columns.get(key)).filter(Boolean);
  const rows = report.rows.filter((row) => !isTotal(row));
  const { keys, labels } = xAxis(rows, xColumn);
  const kind = measures[0].kind;
  const series = measures.map((measure, index) => ({
    name: columnLabel(measure),
    index,
    values: keys.map((x) => {
      const row = rows.find((one) => String(one[chart.x]) === x);
      const value = row ? row[measure.key] : null;
      return value === null || value === undefined ? null : numeric(value);
    }),
  }));
  const all = series.flatMap((one) => one.values.filter((value) => value !== null));
  const yMax = niceMax(Math.max(0, ...all), kind);
  const names = series.map((one) => one.name);
  const svg = frame(
    all.length
      ? t("{title}: line chart of {measures} per {x}", {
          title: report.title,
          measures: names.join(", "),
          x: columnLabel(xColumn),
        })
      : t("{title}: no data for this period", { title: report.title }),
    HEIGHT,
  );
  const yTitle = names.length === 1 ? names[0] : "";
  const step = axes(svg, { xLabels: labels, xTitle: columnLabel(xColumn), yTitle, yMax, kind });
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  for (const one of series) {
    const points = one.values
      .map((value, i) =>
        value === null ? null : [PAD.left + step * (i + 0.5), PAD.top + plotHeight - (plotHeight * value) / yMax, i],
      )
      .filter(Boolean);
    if (!points.length) continue;
    const path = points.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)}`).join(" ");
    svg.append(s("path", { d: path, class: "line", fill: "none", stroke: color(one.index) }));
    for (const [x, y, i] of points) {
      svg.append(
        s(
          "circle",
          { cx: x, cy: y, r: 3.5, fill: color(one.index), class: "point" },
          s("title", {}, `${labels[i]} · ${one.name}: ${formatValue(kind, one.values[i])}`),
        ),
      );
    }
  }
  return { svg, names, legend: names.length > 1 };
}

const FUNNEL_ROW = 40;
const FUNNEL_LABELS = 170;

function funnel(report, columns) {
  const chart = report.chart;
  const xColumn = columns.get(chart.x);
  const measure = columns.get(chart.y[0]);
  const rows = report.rows.filter((row) => !isTotal(row));
  const values = rows.map((row) => numeric(row[measure.key]));
  const first = values[0] || 0;
  const most = Math.max(1, ...values);
  const stages = rows.map((row, i) => {
    const fromStart = row.from_start ?? (first ? values[i] / first : null);
    return {
      name: cellText(xColumn, row),
      value: values[i],
      share: fromStart,
      text:
        i === 0 || fromStart === null
          ? formatNumber(values[i])
          : `${formatNumber(values[i])} (${formatShare(fromStart)})`,
    };
  });
  const height = PAD.top + stages.length * FUNNEL_ROW + 16;
  const label = t("{title}: funnel of {measure} per {stage}: {stages}", {
    title: report.title,
    measure: columnLabel(measure),
    stage: columnLabel(xColumn),
    stages: stages.map((stage) => `${stage.name} ${stage.text}`).join(", "),
  });
  const svg = frame(label, height);
  svg.append(s("text", { x: FUNNEL_LABELS + 12, y: 14, class: "axis-title" }, columnLabel(measure)));
  const room = WIDTH - FUNNEL_LABELS - PAD.right - 110;
  const middle = FUNNEL_LABELS + 12 + room / 2;
  stages.forEach((stage, i) => {
    const y = PAD.top + i * FUNNEL_ROW;
    const width = Math.max(2, (room * stage.value) / most);
    svg.append(
      s(
        "text",
        { x: FUNNEL_LABELS, y: y + FUNNEL_ROW / 2 + 4, class: "tick stage-name", "text-anchor": "end" },
        shorten(stage.name, FUNNEL_LABELS - 8),
      ),
      s(
        "rect",
        {
          x: middle - width / 2,
          y: y + 4,
          width,
          height: FUNNEL_ROW - 8,
          rx: 3,
          fill: color(0),
          "fill-opacity": String(1 - Math.min(0.5, i * 0.08)),
          class: "bar funnel-step",
          dataset: { stage: stage.name },
        },
        s(
          "title",
          {},
          stage.share === null || i === 0
            ? `${stage.name}: ${formatNumber(stage.value)}`
            : t("{stage}: {count}, {share} of the start", {
                stage: stage.name,
                count: formatNumber(stage.value),
                share: formatShare(stage.share),
              }),
        ),
      ),
      s("text", { x: middle + width / 2 + 8, y: y + FUNNEL_ROW / 2 + 4, class: "value" }, stage.text),
    );
  });
  return { svg, names: [], legend: false };
}

function summary(report, { names, labels, groups, stacked, kind, measures }) {
  if (!groups.length) return t("{title}: no data for this period", { title: report.title });
  const x = columnLabel(report.columns.find((column) => column.key === report.chart.x));
  if (stacked) {
    const total = groups.flat().reduce((sum, one) => sum + one.value, 0);
    return t("{title}: bars of {measure} per {x}, stacked by {series}; {total} in total", {
      title: report.title,
      measure: columnLabel(measures[0]),
      x,
      series: names.join(", "),
      total: formatValue(kind, total),
    });
  }
  let best = 0;
  groups.forEach((group, i) => {
    if (group[0].value > groups[best][0].value) best = i;
  });
  return t("{title}: bars of {measures} per {x}; highest {first}: {name}, {value}", {
    title: report.title,
    measures: names.join(", "),
    x,
    first: names[0],
    name: labels[best],
    value: formatValue(kind, groups[best][0].value),
  });
}

/** The chart of `report` with its legend, or a line saying there is nothing to draw. */
export function drawChart(report) {
  const columns = columnsByKey(report);
  const chart = report.chart || {};
  const known = columns.get(chart.x) && (chart.y || []).some((key) => columns.get(key));
  const rows = report.rows.filter((row) => !isTotal(row));
  if (!known || !rows.length) {
    return h("p", { class: "muted empty-chart" }, t("No data for this period."));
  }
  const draw = { funnel, line: lines }[chart.kind] || bars;
  const drawn = draw(report, columns);
  return h("figure", { class: "report-chart" }, drawn.svg, drawn.legend ? legend(drawn.names) : null);
}
