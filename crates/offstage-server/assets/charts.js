// The charts (`#/charts`, `#/charts?window=day`): per task type, tasks completed and failed
// per bucket, the queue depth, and the wait from launch to start (p50, p90, p99), over the
// last hour (one-minute buckets) or day (ten-minute buckets), from `GET /api/stats`.
//
// Live without a stream: the numbers are per minute and every node writes its minute once it
// is over, so the view reads them again a couple of seconds after each minute ends (and when
// the tab is shown again, or the Reload button is pressed). The last bucket is the one under
// way: this server's own tasks show in it at once, other nodes' a minute later.

import { api } from "./api.js";
import { COLOURS, fmtCount, fmtSeconds, lineChart } from "./chart.js";
import { fmtTime, go, h, tell } from "./ui.js";

/** When to read again: a couple of seconds after the next minute starts. */
const msToNextRead = () => 60_000 - (Date.now() % 60_000) + 2_000;

export function chartsView(main, params) {
  const range = params.get("window") === "day" ? "day" : "hour";
  document.title = "Charts · Offstage";
  let stopped = false;
  let timer = null;
  let stats = null;
  // The task type the wait chart shows; the busiest one until the user picks another.
  let waitType = params.get("type") || null;

  const problem = h("p", { class: "notice error", role: "alert", hidden: true });
  const status = h("span", { class: "muted small", role: "status" });
  const legend = h("ul", { class: "legend", "aria-label": "Task types" });
  const charts = h("div", { class: "charts" });
  const empty = h("div", { class: "empty", hidden: true });
  const waitSelect = h("select", {
    id: "ch-wait-type", name: "type",
    onchange: () => { waitType = waitSelect.value; draw(); },
  });

  const switchTo = (to) => {
    const next = new URLSearchParams(params);
    if (to === "hour") next.delete("window"); else next.set("window", to);
    go("/charts", next);
  };
  const windowButton = (value, text) => h("button", {
    type: "button", id: `ch-${value}`, class: "compact", "aria-pressed": String(range === value),
    onclick: () => { if (range !== value) switchTo(value); },
  }, text);

  function figure(name, title, chart, extra) {
    return h("figure", { class: "chart-card card", "data-figure": name },
      h("figcaption", {}, h("h2", {}, title), extra),
      chart);
  }

  function draw() {
    if (!stats) return;
    const types = stats.types;
    const from = Date.parse(stats.from);
    const bucketMs = stats.bucket_s * 1000;
    const per = stats.bucket_s === 60 ? "per minute" : "per 10 minutes";
    const span = range === "day" ? "day" : "hour";
    if (!types.length) {
      charts.replaceChildren();
      legend.replaceChildren();
      empty.replaceChildren(h("p", {}, `No task started, ended or waited in the last ${span}.`),
        h("p", { class: "small" }, "Launch some, and they show here within the minute."));
      empty.hidden = false;
      return;
    }
    empty.hidden = true;
    const colour = new Map(types.map((t, i) => [t.name, i % COLOURS]));
    const lines = (field) => types.map((t) => ({
      name: t.name, colour: colour.get(t.name), values: t[field],
    }));
    legend.replaceChildren(...types.map((t) => h("li", { "data-type": t.name },
      h("span", { class: `swatch c${colour.get(t.name)}`, "aria-hidden": "true" }),
      h("span", { class: "name" }, t.name),
      h("span", { class: "muted small totals" },
        `${fmtCount(t.totals.completed)} completed, ${fmtCount(t.totals.failed)} failed`,
        t.totals.killed ? `, ${fmtCount(t.totals.killed)} killed` : "",
        t.totals.missing ? `, ${fmtCount(t.totals.missing)} missing` : "",
        `, ${fmtCount(t.totals.queued)} queued`))));

    // The wait chart: one type's percentiles, on a log scale.
    const busiest = [...types].sort((a, b) => b.totals.started - a.totals.started)[0];
    if (!types.some((t) => t.name === waitType)) waitType = busiest.name;
    waitSelect.replaceChildren(...types.map((t) =>
      h("option", { value: t.name, selected: t.name === waitType }, t.name)));
    const shown = types.find((t) => t.name === waitType);
    const waits = [["p50", "wait_p50_s"], ["p90", "wait_p90_s"], ["p99", "wait_p99_s"]]
      .map(([name, field], i) => ({ name, colour: i, values: shown[field] }));
    const waitLegend = h("ul", { class: "legend inline", "aria-label": "Percentiles" },
      waits.map((w) => h("li", { "data-type": w.name },
        h("span", { class: `swatch c${w.colour}`, "aria-hidden": "true" }), w.name)));

    charts.replaceChildren(
      figure("completed", `Completed ${per}`, lineChart({
        name: "completed", label: `Tasks completed ${per}, by task type, over the last ${span}`,
        series: lines("completed"), from, bucketMs, format: fmtCount,
      })),
      figure("failed", `Failed ${per} (timeouts included)`, lineChart({
        name: "failed", label: `Tasks failed ${per}, by task type, over the last ${span}`,
        series: lines("failed"), from, bucketMs, format: fmtCount,
      })),
      figure("queued", "Queue depth", lineChart({
        name: "queued", label: `Queued tasks, by task type, over the last ${span}`,
        series: lines("queued"), from, bucketMs, format: fmtCount,
      })),
      figure("wait", "Wait from launch to start", lineChart({
        name: "wait", label: `Wait from launch to start of ${waitType}: p50, p90 and p99`,
        series: waits, from, bucketMs, format: fmtSeconds, log: true,
      }), h("div", { class: "chart-tools" },
        h("label", { for: "ch-wait-type", class: "inline" }, "Task type", waitSelect),
        waitLegend)));
  }

  async function load() {
    clearTimeout(timer);
    try {
      const body = await api(`api/stats?window=${range}`);
      if (stopped) return;
      stats = body;
      draw();
      status.textContent = `As of ${fmtTime(new Date().toISOString())}`;
      problem.hidden = true;
    } catch (error) {
      if (stopped) return;
      tell(problem, error.message);
    }
    if (!stopped) timer = setTimeout(load, msToNextRead());
  }

  const onVisible = () => { if (document.visibilityState === "visible") load(); };
  document.addEventListener("visibilitychange", onVisible);

  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Charts"),
      h("div", { class: "row-actions" },
        h("div", { class: "segmented", role: "group", "aria-label": "Window" },
          windowButton("hour", "Last hour"), windowButton("day", "Last day")),
        status,
        h("button", { type: "button", id: "ch-reload", onclick: load }, "Reload"))),
    h("p", { class: "muted small lede" }, "What each task type did, read from per-minute counts "
      + "every node keeps, so this page costs the same with a million finished tasks as with "
      + "ten. The last point is the minute under way; this server's tasks show in it at once, "
      + "other nodes' once their minute is over."),
    problem,
    legend,
    empty,
    charts);
  load();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisible);
    },
  };
}
