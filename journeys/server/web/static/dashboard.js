// The flags dashboard: open flags counted by rule and by site, then every flag, newest first.
import {
  RULES,
  announce,
  apiGet,
  boot,
  el,
  formatDateTime,
  handleError,
  journeyUrl,
  ruleHelp,
  ruleLabel,
  ruleSeverity,
  severityBadge,
  severityRank,
  stateMessage,
  statusBadge,
  timeAgo,
} from "./common.js";
import { loadTrends, setupTrends } from "./trends.js";
import { loadMe, rowHandling, showWho } from "./actions.js";

const PAGE_SIZE = 50;
const SUMMARY_PAGE_SIZE = 200;
const SUMMARY_MAX_PAGES = 50;
const LAST_DASHBOARD_KEY = "journeys.lastDashboard";

const $ = (id) => document.getElementById(id);

const state = {
  filters: { status: "open", rule: "", site: "", tenant: "", since: "", handling: "" },
  openFlags: null, // every open flag of the tenant filter, for the summary
  summaryCapped: false,
  shown: 0,
  nextCursor: null,
  generation: 0,
  summaryGeneration: 0,
  openFlagsTenant: null,
};

// ---------------------------------------------------------------------------------------------
// Filters live in the address bar, so a filtered view can be bookmarked and shared.

function filtersFromUrl() {
  const params = new URLSearchParams(location.search);
  const status = params.get("status");
  return {
    status: status === null ? "open" : status === "any" ? "" : status,
    rule: params.get("rule") ?? "",
    site: params.get("site") ?? "",
    tenant: params.get("tenant") ?? "",
    since: params.get("since") ?? "",
    handling: params.get("handling") ?? "",
  };
}

function urlForFilters(filters) {
  const params = new URLSearchParams();
  if (filters.status !== "open") params.set("status", filters.status || "any");
  for (const key of ["rule", "site", "tenant", "since", "handling"]) {
    if (filters[key]) params.set(key, filters[key]);
  }
  const query = params.toString();
  return `${location.pathname}${query ? `?${query}` : ""}`;
}

function filtersFromForm() {
  return {
    status: $("f-status").value,
    rule: $("f-rule").value,
    site: $("f-site").value.trim(),
    tenant: $("f-tenant").value.trim(),
    since: $("f-since").value,
    handling: state.filters.handling,
  };
}

function fillForm(filters) {
  ensureRuleOption(filters.rule);
  $("f-status").value = filters.status;
  $("f-rule").value = filters.rule;
  $("f-site").value = filters.site;
  $("f-tenant").value = filters.tenant;
  ensureSinceOption(filters.since);
  $("f-since").value = filters.since;
  for (const button of document.querySelectorAll("#handling-views [data-handling]")) {
    button.setAttribute("aria-pressed", String(button.dataset.handling === filters.handling));
  }
}

function ensureRuleOption(rule) {
  const select = $("f-rule");
  if (!rule || [...select.options].some((o) => o.value === rule)) return;
  select.append(el("option", { value: rule }, ruleLabel(rule)));
}

function ensureSinceOption(since) {
  const select = $("f-since");
  if (!since || [...select.options].some((o) => o.value === since)) return;
  select.append(el("option", { value: since }, `In the last ${since} days`));
}

function sinceParam(days) {
  const n = Number(days);
  if (!days || !Number.isFinite(n) || n <= 0) return undefined;
  return new Date(Date.now() - n * 24 * 3600 * 1000).toISOString();
}

function applyFilters(filters, { push = true } = {}) {
  state.filters = filters;
  fillForm(filters);
  const url = urlForFilters(filters);
  if (push && url !== `${location.pathname}${location.search}`) history.pushState(null, "", url);
  rememberDashboard();
  refresh();
}

function rememberDashboard() {
  try {
    sessionStorage.setItem(LAST_DASHBOARD_KEY, `${location.pathname}${location.search}`);
  } catch {
    // storage can be unavailable; the breadcrumb then goes to the plain dashboard
  }
}

// ---------------------------------------------------------------------------------------------
// Loading.

async function load() {
  state.filters = filtersFromUrl();
  fillForm(state.filters);
  rememberDashboard();
  await loadMe();
  showWho();
  await Promise.all([loadSummary(), loadList(), loadTrends(state.filters.tenant)]);
}

async function refresh() {
  try {
    await Promise.all([loadSummary(), loadList(), loadTrends(state.filters.tenant)]);
  } catch (error) {
    handleError(error);
  }
}

async function loadSummary() {
  const tenant = state.filters.tenant;
  if (state.openFlags && state.openFlagsTenant === tenant) {
    renderSummary();
    return;
  }
  const generation = ++state.summaryGeneration;
  $("by-rule").setAttribute("aria-busy", "true");
  $("by-site").setAttribute("aria-busy", "true");
  $("summary-total").textContent = "Counting open flags…";
  $("by-rule").replaceChildren(...skeletons(4, "rule-card skeleton"));
  $("by-site").replaceChildren(...skeletons(3, "site-row skeleton"));
  try {
    const flags = [];
    let cursor = null;
    let pages = 0;
    do {
      const page = await apiGet("/flags", { status: "open", tenant, limit: SUMMARY_PAGE_SIZE, cursor });
      flags.push(...(page.flags ?? []));
      cursor = page.next_cursor ?? null;
      pages += 1;
    } while (cursor && pages < SUMMARY_MAX_PAGES);
    if (generation !== state.summaryGeneration) return;
    state.openFlags = flags;
    state.openFlagsTenant = tenant;
    state.summaryCapped = Boolean(cursor);
    fillDatalists(flags);
    renderSummary();
  } catch (error) {
    if (generation !== state.summaryGeneration) return;
    state.openFlags = null;
    $("by-rule").removeAttribute("aria-busy");
    $("by-site").removeAttribute("aria-busy");
    $("summary-total").textContent = "";
    if (!handleError(error)) {
      $("by-rule").replaceChildren(
        el("li", { class: "summary-error" }, stateMessage({ kind: "error", title: "Could not count open flags", body: error.message })),
      );
      $("by-site").replaceChildren();
    }
  }
}

function skeletons(n, className) {
  return Array.from({ length: n }, () => el("li", { class: className, "aria-hidden": "true" }));
}

async function loadList({ more = false } = {}) {
  const generation = more ? state.generation : ++state.generation;
  const list = $("flag-list");
  const button = $("load-more");
  const filters = state.filters;
  if (!more) {
    state.shown = 0;
    state.nextCursor = null;
    $("list-state").replaceChildren();
    list.replaceChildren(...skeletons(4, "flag-skeleton skeleton"));
    $("list-count").textContent = "Loading…";
    button.hidden = true;
  } else {
    button.disabled = true;
    button.textContent = "Loading…";
  }
  list.setAttribute("aria-busy", "true");
  list.dataset.state = "loading";
  try {
    const page = await apiGet("/flags", {
      tenant: filters.tenant,
      rule: filters.rule,
      status: filters.status,
      site: filters.site,
      since: sinceParam(filters.since),
      handling: filters.handling,
      limit: PAGE_SIZE,
      cursor: more ? state.nextCursor : undefined,
    });
    if (generation !== state.generation) return;
    const flags = page.flags ?? [];
    if (!more) list.replaceChildren();
    list.append(...flags.map(flagItem));
    state.shown += flags.length;
    state.nextCursor = page.next_cursor ?? null;
    button.hidden = !state.nextCursor;
    fillDatalists(flags);
    renderCount();
    list.dataset.state = "ready";
    list.dataset.query = location.search;
    if (state.shown === 0) {
      $("list-state").replaceChildren(emptyState());
    }
    announce(more ? `${flags.length} more flags loaded` : $("list-count").textContent);
    if (more && flags.length) list.children[state.shown - flags.length]?.querySelector("a")?.focus();
  } catch (error) {
    if (generation !== state.generation) return;
    if (!more) list.replaceChildren();
    list.dataset.state = "error";
    $("list-count").textContent = "";
    if (!handleError(error)) {
      $("list-state").replaceChildren(
        stateMessage({
          kind: "error",
          title: "Could not load flags",
          body: error.message,
          action: el("button", { type: "button", class: "button secondary", onclick: () => loadList({ more }) }, "Try again"),
        }),
      );
    }
  } finally {
    if (generation === state.generation) {
      list.removeAttribute("aria-busy");
      button.disabled = false;
      button.textContent = "Load more flags";
    }
  }
}

function renderCount() {
  const status = state.filters.status;
  const noun = state.shown === 1 ? "flag" : "flags";
  const what = status ? `${status} ${noun}` : noun;
  $("list-count").textContent = state.nextCursor
    ? `Showing the newest ${state.shown} ${what}`
    : `${state.shown} ${what}`;
}

function emptyState() {
  const filtered = Object.entries(state.filters).some(([key, value]) => (key === "status" ? value !== "open" : value));
  if (state.filters.status === "open" && !filtered) {
    return stateMessage({
      kind: "empty",
      title: "No open flags",
      body: "Every system agrees about every customer right now. New contradictions appear here as events arrive.",
    });
  }
  return stateMessage({
    kind: "no-match",
    title: "No flags match these filters",
    body: "Try another rule, site or time range, or clear the filters.",
    action: el("button", { type: "button", class: "button secondary", onclick: clearFilters }, "Clear filters"),
  });
}

function clearFilters() {
  applyFilters({ status: "open", rule: "", site: "", tenant: "", since: "", handling: "" });
}

// ---------------------------------------------------------------------------------------------
// Rendering.

function flagItem(flag) {
  const sites = flag.sites ?? [];
  const systems = flag.systems ?? [];
  const item = el(
    "li",
    { class: ["flag-item", `sev-${flag.severity}`, `is-${flag.status}`], dataset: { flagId: flag.flag_id, rule: flag.rule } },
    el(
      "a",
      { class: "flag-link", href: journeyUrl(flag.customer_id, flag.flag_id) },
      el("div", { class: "flag-sev" }, severityBadge(flag.severity)),
      el(
        "div",
        { class: "flag-body" },
        el(
          "div",
          { class: "flag-title" },
          el("span", { class: "flag-rule", title: ruleHelp(flag.rule) || null }, ruleLabel(flag.rule)),
          flag.status !== "open" ? statusBadge(flag.status) : null,
        ),
        el("p", { class: "flag-message" }, flag.message),
        flag.status === "resolved" && flag.resolution
          ? el("p", { class: "flag-resolution" }, "Resolved: ", flag.resolution)
          : null,
        el(
          "div",
          { class: "flag-meta" },
          sites.length
            ? el("span", { class: "meta-item" }, el("span", { class: "meta-label" }, sites.length > 1 ? "Sites" : "Site"), sites.join(", "))
            : el("span", { class: "meta-item muted" }, "No site"),
          systems.length
            ? el(
                "span",
                { class: "meta-item" },
                el("span", { class: "meta-label" }, "Systems"),
                el("span", { class: "chips" }, systems.map((s) => el("span", { class: "chip" }, s))),
              )
            : null,
          flag.tenant ? el("span", { class: "meta-item" }, el("span", { class: "meta-label" }, "Tenant"), flag.tenant) : null,
        ),
      ),
      el(
        "div",
        { class: "flag-when" },
        timeAgo(flag.opened_at),
        el("span", { class: "abs" }, formatDateTime(flag.opened_at)),
      ),
    ),
  );
  // Handling and the action buttons (actions.js), beside the link: a link holds no buttons.
  item.append(
    rowHandling(flag, (next) => {
      const fresh = flagItem(next);
      item.replaceWith(fresh);
      if (next.status !== flag.status) {
        state.openFlags = null; // resolved or reopened: count the open flags again
        loadSummary();
      }
      return fresh;
    }),
  );
  return item;
}

function renderSummary() {
  const flags = state.openFlags ?? [];
  const { rule, site } = state.filters;
  const inSite = site ? flags.filter((f) => (f.sites ?? []).includes(site)) : flags;
  const inRule = rule ? flags.filter((f) => f.rule === rule) : flags;
  const scoped = inSite.filter((f) => !rule || f.rule === rule);

  const high = scoped.filter((f) => f.severity === "high").length;
  const customers = new Set(scoped.map((f) => `${f.tenant}/${f.customer_id}`)).size;
  const plus = state.summaryCapped ? "+" : "";
  const total = $("summary-total");
  total.replaceChildren();
  total.append(
    el("strong", { class: "total-number" }, `${scoped.length}${plus}`),
    ` open ${scoped.length === 1 ? "flag" : "flags"}`,
    scoped.length ? ` for ${customers} ${customers === 1 ? "customer" : "customers"}` : "",
    high ? el("span", { class: "badge sev-high total-high" }, el("span", { class: "badge-dot", "aria-hidden": "true" }), `${high} high`) : "",
    rule || site ? el("span", { class: "muted" }, `· ${[rule && ruleLabel(rule), site].filter(Boolean).join(", ")}`) : "",
  );

  // By rule: every documented rule, then any other rule the flags carry.
  const ruleCounts = new Map(Object.keys(RULES).map((r) => [r, { count: 0, severity: ruleSeverity(r) }]));
  for (const flag of inSite) {
    const entry = ruleCounts.get(flag.rule) ?? { count: 0, severity: flag.severity };
    entry.count += 1;
    entry.severity = flag.severity ?? entry.severity;
    ruleCounts.set(flag.rule, entry);
  }
  const rules = [...ruleCounts.entries()].sort(
    ([ra, a], [rb, b]) => (b.count > 0) - (a.count > 0) || severityRank(a.severity) - severityRank(b.severity) || b.count - a.count || ra.localeCompare(rb),
  );
  const byRule = $("by-rule");
  byRule.replaceChildren(
    ...rules.map(([name, { count, severity }]) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: ["rule-card", `sev-${severity}`, count === 0 && "is-zero"],
            dataset: { rule: name, count: String(count) },
            "aria-pressed": String(rule === name),
            title: ruleHelp(name) || null,
            onclick: () => applyFilters({ ...state.filters, rule: rule === name ? "" : name }),
          },
          el("span", { class: "rule-count" }, String(count)),
          el("span", { class: "rule-name" }, ruleLabel(name)),
          el("span", { class: ["rule-sev", `sev-text-${severity}`] }, severity ? `${severity}` : ""),
        ),
      ),
    ),
  );
  byRule.removeAttribute("aria-busy");

  // By site: a flag can concern several sites; flags without one are counted apart.
  const siteCounts = new Map();
  let noSite = 0;
  for (const flag of inRule) {
    const sites = flag.sites ?? [];
    if (!sites.length) noSite += 1;
    for (const s of sites) siteCounts.set(s, (siteCounts.get(s) ?? 0) + 1);
  }
  if (site && !siteCounts.has(site)) siteCounts.set(site, 0);
  const sites = [...siteCounts.entries()].sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
  const max = Math.max(1, noSite, ...sites.map(([, n]) => n));
  const bySite = $("by-site");
  const rows = sites.map(([name, count]) =>
    el(
      "li",
      {},
      el(
        "button",
        {
          type: "button",
          class: "site-row",
          dataset: { site: name, count: String(count) },
          "aria-pressed": String(site === name),
          onclick: () => applyFilters({ ...state.filters, site: site === name ? "" : name }),
        },
        el("span", { class: "site-name" }, name),
        bar(count, max),
        el("span", { class: "site-count" }, String(count)),
      ),
    ),
  );
  if (noSite) {
    rows.push(
      el(
        "li",
        {},
        el(
          "div",
          { class: "site-row no-site", dataset: { site: "", count: String(noSite) }, title: "Flags whose events carry no site" },
          el("span", { class: "site-name" }, "No site"),
          bar(noSite, max),
          el("span", { class: "site-count" }, String(noSite)),
        ),
      ),
    );
  }
  bySite.replaceChildren(...(rows.length ? rows : [el("li", { class: "muted empty-line" }, "No open flags")]));
  bySite.removeAttribute("aria-busy");
}

function bar(count, max) {
  const fill = el("span", { class: "bar-fill" });
  fill.style.setProperty("width", `${Math.round((count / max) * 100)}%`);
  return el("span", { class: "bar", "aria-hidden": "true" }, fill);
}

function fillDatalists(flags) {
  for (const [id, values] of [
    ["sites", flags.flatMap((f) => f.sites ?? [])],
    ["tenants", flags.map((f) => f.tenant).filter(Boolean)],
  ]) {
    const list = $(id);
    const known = new Set([...list.options].map((o) => o.value));
    for (const value of new Set(values)) {
      if (!known.has(value)) list.append(el("option", { value }));
    }
  }
  for (const flag of flags) ensureRuleOption(flag.rule);
}

// ---------------------------------------------------------------------------------------------
// Wiring.

function setup() {
  const ruleSelect = $("f-rule");
  for (const rule of Object.keys(RULES)) ruleSelect.append(el("option", { value: rule }, ruleLabel(rule)));
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    applyFilters(filtersFromForm());
  });
  for (const id of ["f-status", "f-rule", "f-since"]) {
    $(id).addEventListener("change", () => applyFilters(filtersFromForm()));
  }
  for (const id of ["f-site", "f-tenant"]) {
    $(id).addEventListener("change", () => applyFilters(filtersFromForm()));
  }
  $("clear-filters").addEventListener("click", clearFilters);
  for (const button of document.querySelectorAll("#handling-views [data-handling]")) {
    button.addEventListener("click", () => applyFilters({ ...filtersFromForm(), handling: button.dataset.handling }));
  }
  $("load-more").addEventListener("click", async () => {
    try {
      await loadList({ more: true });
    } catch (error) {
      handleError(error);
    }
  });
  window.addEventListener("popstate", () => {
    state.filters = filtersFromUrl();
    fillForm(state.filters);
    rememberDashboard();
    refresh();
  });
}

setup();
setupTrends();
boot(load);
