// Line charts in plain SVG: one `<path>` per series over evenly spaced buckets, a y axis with
// round ticks (linear, or logarithmic for durations), time labels along the x axis, and one
// hover target per bucket whose `<title>` reads out every series' value there.
//
// No library: the dashboard draws a few dozen lines of at most 144 points, which is what SVG
// is for. Colours are classes (`c0` … `c7`, in style.css), so the CSP's `style-src 'self'`
// holds and the dark theme recolours them. Data goes in as text only.

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element with attributes and children. */
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child);
  }
  return el;
}

/** The number of colour classes in style.css. */
export const COLOURS = 8;

/** About `count` round ticks from 0 up to at least `max`: 0, 2, 4, … or 0, 25, 50, …. */
function linearTicks(max, count = 4) {
  if (!(max > 0)) return [0, 1];
  const rough = max / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((m) => m >= rough);
  const ticks = [];
  for (let t = 0; t < max + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  if (ticks[ticks.length - 1] < max) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

/** Powers of ten from below `min` to above `max` (both > 0). */
function logTicks(min, max) {
  const ticks = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e += 1) {
    ticks.push(10 ** e);
  }
  return ticks.length > 1 ? ticks : [ticks[0], ticks[0] * 10];
}

const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

/**
 * A line chart as an `<svg>`.
 *
 * @param {object} chart
 * @param {string} chart.name       what `data-chart` says (for tests and styles)
 * @param {string} chart.label      the accessible name
 * @param {Array<{name: string, colour: number, values: Array<number|null>}>} chart.series
 * @param {number} chart.from       the first bucket's start (ms since the epoch)
 * @param {number} chart.bucketMs   how long a bucket is
 * @param {(v: number) => string} chart.format  a value as text, for ticks and read-outs
 * @param {boolean} [chart.log]     a logarithmic y axis (values ≤ 0 are not drawn)
 */
export function lineChart({ name, label, series, from, bucketMs, format, log = false }) {
  const width = 640;
  const height = 180;
  const pad = { left: 56, right: 12, top: 10, bottom: 24 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const buckets = Math.max(1, ...series.map((line) => line.values.length));
  const all = series.flatMap((line) => line.values)
    .filter((v) => v !== null && (!log || v > 0));
  let ticks;
  let y;
  if (log) {
    ticks = all.length ? logTicks(Math.min(...all), Math.max(...all)) : [0.001, 1];
    const lo = Math.log10(ticks[0]);
    const hi = Math.log10(ticks[ticks.length - 1]);
    y = (v) => pad.top + plotH - ((Math.log10(v) - lo) / (hi - lo)) * plotH;
  } else {
    ticks = linearTicks(Math.max(0, ...all));
    const top = ticks[ticks.length - 1] || 1;
    y = (v) => pad.top + plotH - (v / top) * plotH;
  }
  const x = (i) => pad.left + (buckets === 1 ? plotW / 2 : (i / (buckets - 1)) * plotW);

  const grid = ticks.map((t) => s("g", { class: "tick y" },
    s("line", { x1: pad.left, x2: width - pad.right, y1: y(t), y2: y(t) }),
    s("text", { x: pad.left - 6, y: y(t), "text-anchor": "end", "dominant-baseline": "middle" },
      format(t))));

  // A time label about every sixth of the way, on a round bucket.
  const every = Math.max(1, Math.round(buckets / 6));
  const times = [];
  for (let i = 0; i < buckets; i += every) {
    times.push(s("text", { class: "tick x", x: x(i), y: height - 6, "text-anchor": "middle" },
      clock.format(new Date(from + i * bucketMs))));
  }

  const lines = series.map((line) => {
    let d = "";
    let pen = false;
    line.values.forEach((v, i) => {
      if (v === null || (log && !(v > 0))) { pen = false; return; }
      d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    const drawn = line.values.filter((v) => v !== null);
    const total = drawn.reduce((sum, v) => sum + v, 0);
    // A lone point draws no line: a dot shows it.
    const dots = line.values.map((v, i) => {
      const alone = v !== null && (!log || v > 0)
        && (line.values[i - 1] ?? null) === null && (line.values[i + 1] ?? null) === null;
      return alone ? s("circle", { class: `dot c${line.colour % COLOURS}`, cx: x(i), cy: y(v), r: 2.5 }) : null;
    });
    return s("g", { class: "series" },
      s("path", {
        class: `line c${line.colour % COLOURS}`, d: d || null, "data-series": line.name,
        "data-total": Number(total.toPrecision(12)), "data-points": drawn.length,
      }),
      dots);
  });

  // One hover target per bucket, its title the values of every series there.
  const step = buckets === 1 ? plotW : plotW / (buckets - 1);
  const targets = Array.from({ length: buckets }, (_, i) => {
    const when = clock.format(new Date(from + i * bucketMs));
    const readout = series.map((line) => {
      const v = line.values[i];
      return `${line.name}: ${v === null || v === undefined ? "—" : format(v)}`;
    });
    return s("rect", {
      class: "hover", x: x(i) - step / 2, y: pad.top, width: step, height: plotH,
    }, s("title", {}, [when, ...readout].join("\n")));
  });

  return s("svg", {
    class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label,
    "data-chart": name, preserveAspectRatio: "none",
  },
  s("title", {}, label),
  s("g", { class: "grid" }, grid),
  s("g", { class: "axis" }, times),
  s("g", { class: "lines" }, lines),
  s("g", { class: "targets" }, targets));
}

/** A count as tick text: 1200 → "1.2k". */
export function fmtCount(v) {
  if (v >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (v >= 1e3) return `${Number((v / 1e3).toPrecision(3))}k`;
  return String(Number(v.toPrecision(3)));
}

/** Seconds as tick text: 0.0004 → "0.4 ms", 2.5 → "2.5 s", 300 → "5 m". */
export function fmtSeconds(v) {
  if (v < 0.001) return `${Number((v * 1e6).toPrecision(2))} µs`;
  if (v < 1) return `${Number((v * 1e3).toPrecision(3))} ms`;
  if (v < 60) return `${Number(v.toPrecision(3))} s`;
  if (v < 3600) return `${Number((v / 60).toPrecision(3))} m`;
  return `${Number((v / 3600).toPrecision(3))} h`;
}
