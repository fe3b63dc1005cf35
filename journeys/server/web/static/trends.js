// The dashboard's trends: open flags over time (hand-written SVG), how long people take to
// acknowledge and resolve, the oldest unacknowledged high flags, and the low survey scores with
// the flags that preceded them. Everything comes from `GET /v1/stats/flags`; every string from
// the API reaches the page as text (el() and textContent), never as markup.
import { apiGet, el, formatDateTime, handleError, journeyUrl, ruleLabel, stateMessage, timeAgo } from "./common.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

// Windows a manager picks from, each with the bucket that keeps the chart readable.
export const WINDOWS = {
  7: { days: 7, bucket: "hour", label: "Last 7 days" },
  30: { days: 30, bucket: "day", label: "Last 30 days" },
  90: { days: 90, bucket: "day", label: "Last 90 days" },
  365: { days: 365, bucket: "week", label: "Last year" },
};
const DEFAULT_WINDOW = "30";

// Distinguishable on white and for the common colour-vision deficiencies (Okabe-Ito, then more).
const PALETTE = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#7a5195", "#8c564b", "#4d4d4d", "#bcbd22"];

const CHART = { width: 1200, height: 300, left: 44, right: 36, top: 16, bottom: 44 };

const trends = {
  tenant: null,
  window: DEFAULT_WINDOW,
  by: "rule",
  stats: null,
  generation: 0,
};

// ---------------------------------------------------------------------------------------------
// Loading.

/** Load (or reuse) the trends of a tenant ("" for every tenant the token covers). */
export async function loadTrends(tenant) {
  if (trends.stats && trends.tenant === tenant) return;
  trends.tenant = tenant;
  await fetchTrends();
}

async function fetchTrends() {
  const generation = ++trends.generation;
  const section = $("trends");
  section.dataset.state = "loading";
  $("trends-chart").setAttribute("aria-busy", "true");
  const chosen = WINDOWS[trends.window] ?? WINDOWS[DEFAULT_WINDOW];
  const until = new Date();
  const since = new Date(until.getTime() - chosen.days * 24 * 3600 * 1000);
  try {
    const stats = await apiGet("/stats/flags", {
      tenant: trends.tenant,
      since: since.toISOString(),
      until: until.toISOString(),
      bucket: chosen.bucket,
    });
    if (generation !== trends.generation) return;
    trends.stats = stats;
    render();
    section.dataset.state = "ready";
  } catch (error) {
    if (generation !== trends.generation) return;
    trends.stats = null;
    section.dataset.state = "error";
    $("trends-chart").removeAttribute("aria-busy");
    if (!handleError(error)) {
      $("trends-chart").replaceChildren(
        stateMessage({ kind: "error", title: "Could not load the trends", body: error.message }),
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering.

function render() {
  const stats = trends.stats;
  renderChart(stats);
  renderMedians(stats);
  renderOldest(stats);
  renderLowScores(stats);
}

/** The series of the chart: each rule (or site) open at some bucket end, with its counts. */
export function seriesOf(points, by) {
  const field = by === "site" ? "by_site" : "by_rule";
  const keys = new Set();
  for (const point of points) for (const [key, n] of Object.entries(point[field] ?? {})) if (n > 0) keys.add(key);
  return [...keys]
    .sort((a, b) => a.localeCompare(b))
    .map((key, index) => ({
      key,
      label: seriesLabel(key, by),
      colour: PALETTE[index % PALETTE.length],
      values: points.map((point) => point[field]?.[key] ?? 0),
    }));
}

function seriesLabel(key, by) {
  if (by === "site") return key === "" ? "No site" : key;
  return ruleLabel(key);
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function niceMax(max) {
  if (max <= 4) return Math.max(1, max);
  const step = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= max) return m * step;
  return 10 * step;
}

function axisDate(iso, bucket) {
  const date = new Date(iso);
  const options = bucket === "hour" ? { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" } : { day: "numeric", month: "short" };
  return new Intl.DateTimeFormat(undefined, options).format(date);
}

function renderChart(stats) {
  const holder = $("trends-chart");
  const points = stats.open_over_time ?? [];
  const series = seriesOf(points, trends.by);
  const what = trends.by === "site" ? "site" : "rule";
  const { width, height, left, right, top, bottom } = CHART;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const start = new Date(stats.since).getTime();
  const end = new Date(stats.until).getTime();
  const x = (iso) => left + ((new Date(iso).getTime() - start) / Math.max(1, end - start)) * plotW;
  const stacked = points.map((_, i) => series.reduce((sum, s) => sum + s.values[i], 0));
  const maxValue = niceMax(Math.max(0, ...stacked));
  const y = (n) => top + plotH - (n / maxValue) * plotH;

  const peak = points.reduce((best, p) => (p.total > (best?.total ?? -1) ? p : best), null);
  const desc =
    `Flags open at the end of each ${stats.bucket}, stacked by ${what}, from ${formatDateTime(stats.since)} ` +
    `to ${formatDateTime(stats.until)}. ` +
    (peak && peak.total ? `Most open: ${peak.total} at ${formatDateTime(peak.at)}. ` : "No flags were open. ") +
    `${(stats.low_scores ?? []).length} low survey scores are marked on the time axis. The same numbers are in the table below.`;

  const chart = svg(
    "svg",
    {
      viewBox: `0 0 ${width} ${height}`,
      class: "trends-svg",
      role: "img",
      "aria-labelledby": "trends-svg-title trends-svg-desc",
      preserveAspectRatio: "xMidYMid meet",
    },
    svg("title", { id: "trends-svg-title" }, `Open flags over time by ${what}`),
    svg("desc", { id: "trends-svg-desc" }, desc),
  );

  // Grid and the value axis.
  const grid = svg("g", { class: "chart-grid", "aria-hidden": "true" });
  const ticks = maxValue <= 4 ? maxValue : 4;
  for (let i = 0; i <= ticks; i += 1) {
    const value = Math.round((maxValue / ticks) * i * 10) / 10;
    grid.append(
      svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value) }),
      svg("text", { x: left - 8, y: y(value), class: "tick-y", "dominant-baseline": "middle", "text-anchor": "end" }, String(value)),
    );
  }
  // The time axis: about six labels, evenly spread over the buckets.
  const every = Math.max(1, Math.ceil(points.length / 6));
  points.forEach((point, index) => {
    if ((points.length - 1 - index) % every !== 0) return;
    grid.append(
      svg("line", { x1: x(point.at), x2: x(point.at), y1: top + plotH, y2: top + plotH + 4, class: "tick-mark" }),
      svg("text", { x: x(point.at), y: top + plotH + 18, class: "tick-x", "text-anchor": "middle" }, axisDate(point.at, stats.bucket)),
    );
  });
  chart.append(grid, svg("line", { x1: left, x2: width - right, y1: top + plotH, y2: top + plotH, class: "chart-axis", "aria-hidden": "true" }));

  // Stacked bands, one per series, so that every series shows and the top edge is the whole;
  // a dot on each band's top edge per point while the points are few enough to tell apart.
  const lines = svg("g", { class: "chart-series" });
  const below = points.map(() => 0);
  for (const s of series) {
    const above = s.values.map((n, i) => below[i] + n);
    const xs = points.map((p) => x(p.at).toFixed(1));
    const edge = above.map((n, i) => `${i ? "L" : "M"}${xs[i]},${y(n).toFixed(1)}`).join(" ");
    const back = below.map((n, i) => `L${xs[i]},${y(n).toFixed(1)}`).reverse().join(" ");
    const group = svg("g", { class: "series", "data-key": s.key }, svg("title", {}, s.label));
    group.append(
      svg("path", { d: `${edge} ${back} Z`, fill: s.colour, "fill-opacity": 0.28, stroke: "none", class: "series-area" }),
      svg("path", { d: edge, fill: "none", stroke: s.colour, "stroke-width": 2, "stroke-linejoin": "round", class: "series-line" }),
    );
    if (points.length <= 60) {
      s.values.forEach((n, i) => {
        group.append(
          svg("circle", { cx: xs[i], cy: y(above[i]).toFixed(1), r: 2.5, fill: s.colour }, svg("title", {}, `${s.label}: ${n} open at ${formatDateTime(points[i].at)}`)),
        );
      });
    }
    above.forEach((n, i) => {
      below[i] = n;
    });
    lines.append(group);
  }
  chart.append(lines);

  // The low survey scores, marked where they arrived on the time axis.
  const marks = svg("g", { class: "chart-low-scores" });
  for (const flag of stats.low_scores ?? []) {
    const at = new Date(flag.opened_at).getTime();
    if (at < start || at > end) continue;
    const cx = x(flag.opened_at);
    const base = top + plotH;
    marks.append(
      svg(
        "g",
        { class: "low-score-marker", "data-flag-id": flag.flag_id },
        svg("title", {}, `Low score, ${formatDateTime(flag.opened_at)}: ${flag.message}`),
        svg("line", { x1: cx, x2: cx, y1: top, y2: base, class: "low-score-rule" }),
        svg("path", { d: `M${cx.toFixed(1)},${base - 2} l-6,-10 h12 z`, class: "low-score-flag" }),
      ),
    );
  }
  chart.append(marks);

  const legend = el(
    "ul",
    { class: "chart-legend", "aria-label": `Bands of the chart, one per ${what}` },
    series.map((s) => {
      const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
      swatch.style.setProperty("background", s.colour);
      return el("li", { dataset: { key: s.key } }, swatch, s.label);
    }),
    (stats.low_scores ?? []).length ? el("li", { class: "legend-low-score" }, el("span", { class: "swatch-low-score", "aria-hidden": "true" }), "Low survey score") : null,
  );
  holder.replaceChildren(
    series.length ? chart : stateMessage({ kind: "empty", title: "No open flags in this window", body: "Nothing was open at the end of any bucket." }),
    series.length ? legend : null,
  );
  holder.removeAttribute("aria-busy");
  renderChartTable(points, series, stats.bucket, what);
}

function renderChartTable(points, series, bucket, what) {
  const table = $("trends-table");
  table.replaceChildren(
    el("caption", { class: "visually-hidden" }, `Flags open at the end of each ${bucket}, by ${what}`),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, `End of ${bucket}`), series.map((s) => el("th", { scope: "col" }, s.label)), el("th", { scope: "col" }, "All"))),
    el(
      "tbody",
      {},
      points.map((point, i) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, formatDateTime(point.at)),
          series.map((s) => el("td", {}, String(s.values[i]))),
          el("td", {}, String(point.total)),
        ),
      ),
    ),
  );
}

/** `45 min`, `5 h`, `3 days`: a span in the unit a person would use. */
export function formatSpan(seconds) {
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 72) return `${hours} h`;
  return `${Math.floor(hours / 24)} days`;
}

function renderMedians(stats) {
  const rows = new Map();
  for (const [field, list] of [["ack", stats.time_to_acknowledge ?? []], ["resolve", stats.time_to_resolve ?? []]]) {
    for (const row of list) {
      const key = `${row.rule}\u0000${row.site}`;
      const entry = rows.get(key) ?? { rule: row.rule, site: row.site };
      entry[field] = row;
      rows.set(key, entry);
    }
  }
  const sorted = [...rows.values()].sort((a, b) => a.rule.localeCompare(b.rule) || a.site.localeCompare(b.site));
  const cell = (row) => (row ? el("td", { dataset: { seconds: String(row.median_s) } }, formatSpan(row.median_s), el("span", { class: "muted" }, ` (${row.count})`)) : el("td", { class: "muted" }, "—"));
  const body = $("trends-medians-body");
  body.replaceChildren(
    ...(sorted.length
      ? sorted.map((row) =>
          el(
            "tr",
            { dataset: { rule: row.rule, site: row.site } },
            el("th", { scope: "row" }, ruleLabel(row.rule)),
            el("td", {}, row.site || "No site"),
            cell(row.ack),
            cell(row.resolve),
          ),
        )
      : [el("tr", {}, el("td", { colspan: "4", class: "muted empty-line" }, "No flag was acknowledged or resolved in this window"))]),
  );
}

function renderOldest(stats) {
  const list = $("trends-oldest");
  const flags = stats.oldest_unacknowledged_high ?? [];
  const total = stats.unacknowledged_high_total ?? flags.length;
  $("trends-oldest-count").textContent = total > flags.length ? `· the oldest ${flags.length} of ${total}` : `· ${total} waiting`;
  list.replaceChildren(
    ...(flags.length
      ? flags.map((flag) =>
          el(
            "li",
            { class: "trend-item", dataset: { flagId: flag.flag_id } },
            el("a", { href: journeyUrl(flag.customer_id, flag.flag_id) }, ruleLabel(flag.rule)),
            el("span", { class: "trend-site" }, (flag.sites ?? []).join(", ") || "No site"),
            el("span", { class: "trend-wait" }, `waiting ${formatSpan(flag.waiting_s)}`),
            el("p", { class: "trend-message" }, flag.message),
          ),
        )
      : [el("li", { class: "muted empty-line" }, "Every high flag has been acknowledged")]),
  );
}

function renderLowScores(stats) {
  const list = $("trends-low-scores");
  const flags = stats.low_scores ?? [];
  list.replaceChildren(
    ...(flags.length
      ? [...flags].reverse().map((flag) =>
          el(
            "li",
            { class: "trend-item low-score-item", dataset: { flagId: flag.flag_id } },
            el("span", { class: "trend-when" }, timeAgo(flag.opened_at), el("span", { class: "abs" }, formatDateTime(flag.opened_at))),
            el("span", { class: "trend-site" }, (flag.sites ?? []).join(", ") || "No site"),
            el("p", { class: "trend-message" }, flag.message),
            el("a", { href: journeyUrl(flag.customer_id, flag.flag_id) }, "Open the journey"),
          ),
        )
      : [el("li", { class: "muted empty-line" }, "No low survey score followed flags in this window")]),
  );
}

// ---------------------------------------------------------------------------------------------
// Wiring.

/** Wire the window and rule/site switches; call once. */
export function setupTrends() {
  const select = $("trends-window");
  for (const [value, { label }] of Object.entries(WINDOWS)) select.append(el("option", { value }, label));
  select.value = trends.window;
  select.addEventListener("change", () => {
    trends.window = select.value;
    fetchTrends().catch(handleError);
  });
  for (const input of document.querySelectorAll("input[name=trends-by]")) {
    input.addEventListener("change", () => {
      if (!input.checked) return;
      trends.by = input.value;
      if (trends.stats) renderChart(trends.stats);
    });
  }
}
