// The journey page: who the customer is, a timeline with a lane per source system, and flags.
import {
  ApiError,
  AuthError,
  GUESS_KINDS,
  announce,
  apiGet,
  boot,
  dayKey,
  el,
  eventFacts,
  eventFamily,
  eventTypeLabel,
  formatDateTime,
  formatDay,
  formatTime,
  humanise,
  kindLabel,
  kindWord,
  parseSearch,
  ruleHelp,
  ruleLabel,
  severityBadge,
  severityRank,
  stateMessage,
  statusBadge,
  timeAgo,
} from "./common.js";
import {
  actionBar,
  afterSaved,
  canDecide,
  conflictCustomers,
  conflictIdentifier,
  decisionButton,
  deskCard,
  handlingDetails,
  isDeskEvent,
  loadMe,
  showWho,
  waitForAction,
} from "./actions.js";

const LAST_DASHBOARD_KEY = "journeys.lastDashboard";
const LANE_COLOURS = 8;

const root = document.getElementById("journey");

const page = {
  view: null,
  flags: new Map(), // flag_id → flag
  flagsByEvent: new Map(), // event_id → [flag]
  selected: null,
  matched: null,
};

// ---------------------------------------------------------------------------------------------
// Loading.

async function load() {
  setBreadcrumb();
  await loadMe();
  showWho();
  const params = new URLSearchParams(location.search);
  const customerId = params.get("customer_id")?.trim();
  const identifier = params.get("identifier")?.trim();
  if (!customerId && !identifier) {
    showState(
      stateMessage({
        kind: "empty",
        title: "Find a customer",
        body: "Search above by phone number, plate, e-mail, order number or customer id, or open a flag from the dashboard.",
      }),
    );
    document.getElementById("search-input")?.focus();
    return;
  }
  showLoading();
  let found;
  try {
    found = customerId
      ? { view: await apiGet(`/journeys/${encodeURIComponent(customerId)}`), matched: null }
      : await findByIdentifier(identifier);
  } catch (error) {
    if (error instanceof AuthError) throw error;
    if (error instanceof ApiError && error.status === 404) {
      showNotFound(customerId ? `customer id ${customerId}` : describeIdentifier(identifier), error.tried);
      return;
    }
    showError(error);
    return;
  }
  render(found.view, found.matched);
  selectFromHash({ scroll: true });
}

/** Look a customer up by `kind:value`, or by a bare value tried as each likely kind in turn. */
async function findByIdentifier(identifier) {
  const parsed = parseSearch(identifier);
  if (parsed?.customer_id) {
    return { view: await apiGet(`/journeys/${encodeURIComponent(parsed.customer_id)}`), matched: null };
  }
  const attempts = parsed?.kind ? [[parsed.kind, parsed.value]] : GUESS_KINDS.map((kind) => [kind, identifier]);
  for (const [kind, value] of attempts) {
    try {
      const view = await apiGet("/journeys", { [kind]: value });
      return { view, matched: { kind, value } };
    } catch (error) {
      const missing = error instanceof ApiError && (error.status === 404 || (error.status === 400 && attempts.length > 1));
      if (!missing || error instanceof AuthError) throw error;
    }
  }
  const error = new ApiError(404, "not_found", "No customer holds that identifier.");
  error.tried = attempts.length > 1 ? attempts.map(([kind]) => kindWord(kind)) : null;
  throw error;
}

function describeIdentifier(identifier) {
  const parsed = parseSearch(identifier);
  if (parsed?.kind) return `${kindWord(parsed.kind)} ${parsed.value}`;
  return `“${identifier}”`;
}

function setBreadcrumb() {
  let last = null;
  try {
    last = sessionStorage.getItem(LAST_DASHBOARD_KEY);
  } catch {
    last = null;
  }
  const link = document.querySelector(".breadcrumb a");
  if (link && last && last.startsWith("/ui/")) link.setAttribute("href", last);
}

function showState(node) {
  root.removeAttribute("aria-busy");
  root.replaceChildren(node);
}

function showLoading() {
  root.setAttribute("aria-busy", "true");
  root.replaceChildren(
    el("div", { class: "loading-block", role: "status" }, el("span", { class: "spinner", "aria-hidden": "true" }), "Loading the journey…"),
  );
}

function showNotFound(what, tried) {
  document.title = "Customer not found · Journey Ledger";
  showState(
    stateMessage({
      kind: "not-found",
      title: "No customer found",
      body: `No journey holds ${what}${tried ? ` (looked it up as ${tried.join(", ")})` : ""}. Check the spelling, or search with a kind, e.g. plate:AB12CDE or phone:+44 7700 900123.`,
      action: el("a", { class: "button secondary", href: "/ui/" }, "Back to flags"),
    }),
  );
}

function showError(error) {
  document.title = "Error · Journey Ledger";
  showState(
    stateMessage({
      kind: "error",
      title: "Could not load this journey",
      body: error.message,
      action: el("button", { type: "button", class: "button secondary", onclick: () => load().catch(() => {}) }, "Try again"),
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Rendering.

function render(view, matched) {
  page.view = view;
  page.matched = matched;
  page.flags = new Map(view.flags.map((f) => [f.flag_id, f]));
  page.flagsByEvent = new Map();
  for (const flag of view.flags) {
    for (const id of flag.event_ids) {
      if (!page.flagsByEvent.has(id)) page.flagsByEvent.set(id, []);
      page.flagsByEvent.get(id).push(flag);
    }
  }
  page.selected = null;
  const name = view.names[0] ?? "Unnamed customer";
  document.title = `${name} · Journey · Journey Ledger`;
  root.removeAttribute("aria-busy");
  root.replaceChildren(
    header(view, matched),
    el(
      "div",
      { class: "journey-layout" },
      el(
        "section",
        { class: "timeline-section", "aria-labelledby": "timeline-title" },
        el(
          "div",
          { class: "section-head" },
          el("h2", { id: "timeline-title" }, "Timeline"),
          el(
            "p",
            { class: "muted" },
            `${view.events.length} ${view.events.length === 1 ? "event" : "events"}, oldest first, one lane per system`,
            view.events.some(isDeskEvent) ? ", and one for the service desk" : "",
          ),
        ),
        el("div", { id: "selection-bar", class: "selection-bar", hidden: true, role: "status" }),
        timeline(view),
      ),
      flagsPanel(view),
    ),
  );
  announce(`Journey of ${name} loaded: ${view.events.length} events, ${view.flags.filter((f) => f.status === "open").length} open flags`);
}

function header(view, matched) {
  const systems = lanesOf(view.events);
  const open = view.flags.filter((f) => f.status === "open");
  const [first, ...others] = view.names;
  const copy = el("button", { type: "button", class: "icon-button", title: "Copy customer id", "aria-label": "Copy customer id" }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(view.customer_id);
      copy.textContent = "Copied";
    } catch {
      copy.textContent = "Select and copy";
    }
    setTimeout(() => {
      copy.textContent = "Copy";
    }, 2000);
  });
  return el(
    "section",
    { class: "card journey-head", "aria-labelledby": "customer-name" },
    el(
      "div",
      { class: "who" },
      el("p", { class: "eyebrow" }, "Customer journey", el("span", { class: "tenant", title: "Tenant" }, view.tenant)),
      el("h1", { id: "customer-name", class: first ? null : "muted" }, first ?? "Unnamed customer"),
      others.length ? el("p", { class: "aka" }, "Also seen as ", others.join(", ")) : null,
      el(
        "p",
        { class: "customer-id" },
        el("span", { class: "meta-label" }, "Customer id"),
        el("code", { id: "customer-id" }, view.customer_id),
        copy,
      ),
      matched
        ? el("p", { class: "matched" }, "Found by ", kindWord(matched.kind), " ", el("strong", {}, matched.value))
        : null,
      el(
        "dl",
        { class: "stats" },
        stat("Events", view.events.length),
        stat("Systems", systems.length),
        stat("Open flags", open.length, open.some((f) => f.severity === "high") ? "sev-text-high" : null),
      ),
      el("p", { class: "as-of muted" }, "Flags evaluated as of ", el("time", { datetime: view.as_of }, formatDateTime(view.as_of))),
    ),
    identifiers(view),
    merges(view),
  );
}

/** The merges that made the customer: when, through which identifier, from which customer. */
function merges(view) {
  if (!view.merges?.length) return null;
  return el(
    "div",
    { class: "merges", id: "merges" },
    el("h2", { id: "merges-title" }, "Merges"),
    el(
      "ol",
      { class: "merge-list", "aria-labelledby": "merges-title" },
      view.merges.map((m) =>
        el(
          "li",
          { class: "merge", dataset: { eventId: m.event_id } },
          el("time", { datetime: m.at }, formatDateTime(m.at)),
          " ",
          el("code", { class: "merge-from" }, m.from_customer),
          " joined through ",
          el("strong", { class: "merge-identifier" }, m.identifier),
          " (event ",
          el("span", { class: "event-id" }, m.event_id),
          ")",
          m.decision ? el("span", { class: "merge-decision" }, ": ", m.decision) : null,
        ),
      ),
    ),
  );
}

/** Why the event is in this journey: the identifier it shares with an earlier event. */
function linkedBy(event) {
  const links = page.view.linked_by;
  if (!links) return null;
  const by = links[event.event_id];
  if (by) return el("p", { class: "event-linked" }, "linked by ", el("span", { class: "linked-identifier" }, by));
  const first = page.view.events[0]?.event_id === event.event_id;
  return el("p", { class: "event-linked muted" }, first ? "first of this customer" : "shares no identifier with an earlier event");
}

function stat(label, value, className = null) {
  return el("div", { class: "stat" }, el("dt", {}, label), el("dd", { class: className }, String(value)));
}

function identifiers(view) {
  return el(
    "div",
    { class: "identifiers" },
    el("h2", { id: "identifiers-title" }, "Identifiers"),
    view.identifiers.length
      ? el(
          "table",
          { class: "ident-table", "aria-labelledby": "identifiers-title" },
          el(
            "thead",
            {},
            el(
              "tr",
              {},
              el("th", { scope: "col" }, "Kind"),
              el("th", { scope: "col" }, "Value"),
              el("th", { scope: "col" }, "Supplied by"),
              canDecide() ? el("th", { scope: "col" }, el("span", { class: "visually-hidden" }, "Decisions")) : null,
            ),
          ),
          el(
            "tbody",
            {},
            view.identifiers.map((ident) =>
              el(
                "tr",
                { dataset: { kind: ident.kind, value: ident.value } },
                el("th", { scope: "row" }, kindLabel(ident.kind)),
                el(
                  "td",
                  { class: "ident-value" },
                  ident.value,
                  ident.not_used_for_matching
                    ? el("span", { class: "muted not-matched" }, ` not used for matching: ${ident.not_used_for_matching}`)
                    : null,
                ),
                el("td", {}, el("span", { class: "chips" }, ident.systems.map((s) => el("span", { class: "chip" }, s)))),
                canDecide()
                  ? el("td", { class: "ident-decide" }, decisionButton("block", { identifiers: [ident], tenant: view.tenant, text: "Block…" }))
                  : null,
              ),
            ),
          ),
        )
      : el("p", { class: "muted" }, "No identifiers."),
  );
}

function lanesOf(events) {
  const lanes = [];
  for (const event of events) {
    if (isDeskEvent(event)) continue; // people's actions have their own lane, the service desk
    const system = event.source?.system ?? "unknown";
    if (!lanes.includes(system)) lanes.push(system);
  }
  return lanes;
}

function timeline(view) {
  const lanes = lanesOf(view.events);
  const laneIndex = new Map(lanes.map((system, i) => [system, i]));
  const counts = new Map();
  for (const event of view.events) counts.set(event.source?.system, (counts.get(event.source?.system) ?? 0) + 1);
  const desk = view.events.filter(isDeskEvent).length;
  const columns = lanes.length + (desk ? 1 : 0);
  const head = el(
    "thead",
    {},
    el(
      "tr",
      {},
      el("th", { scope: "col", class: "time-col" }, "Time"),
      lanes.map((system, i) =>
        el(
          "th",
          { scope: "col", class: ["lane-head", `lane-${i % LANE_COLOURS}`], dataset: { system } },
          el("span", { class: "lane-name" }, system),
          el("span", { class: "lane-count" }, `${counts.get(system)} ${counts.get(system) === 1 ? "event" : "events"}`),
        ),
      ),
      desk
        ? el(
            "th",
            { scope: "col", class: ["lane-head", "lane-desk"], dataset: { system: "service-desk" } },
            el("span", { class: "lane-name" }, "Service desk"),
            el("span", { class: "lane-count" }, `${desk} ${desk === 1 ? "action" : "actions"}`),
          )
        : null,
    ),
  );
  const rows = [];
  let day = null;
  for (const event of view.events) {
    const key = dayKey(event.occurred_at);
    if (key !== day) {
      day = key;
      rows.push(el("tr", { class: "day-row" }, el("th", { colspan: String(columns + 1), scope: "colgroup" }, formatDay(event.occurred_at))));
    }
    if (isDeskEvent(event)) {
      rows.push(deskRow(event, lanes.length));
      continue;
    }
    const lane = laneIndex.get(event.source?.system ?? "unknown");
    rows.push(
      el(
        "tr",
        { class: "event-row", dataset: { eventId: event.event_id } },
        el(
          "th",
          { scope: "row", class: "time-cell" },
          el("time", { datetime: event.occurred_at, title: formatDateTime(event.occurred_at) }, formatTime(event.occurred_at)),
        ),
        lanes.map((_, i) =>
          i === lane ? el("td", { class: ["lane-cell", `lane-${i % LANE_COLOURS}`] }, eventCard(event)) : el("td", { class: "lane-cell empty" }),
        ),
        desk ? el("td", { class: "lane-cell empty desk-cell" }) : null,
      ),
    );
  }
  if (dayKey(view.as_of) !== day) {
    rows.push(el("tr", { class: "day-row" }, el("th", { colspan: String(columns + 1), scope: "colgroup" }, formatDay(view.as_of))));
  }
  rows.push(
    el(
      "tr",
      { class: "as-of-row" },
      el("th", { scope: "row", class: "time-cell" }, el("time", { datetime: view.as_of }, formatTime(view.as_of))),
      el("td", { colspan: String(Math.max(columns, 1)) }, "As of ", formatDateTime(view.as_of), ": flags are evaluated at this moment"),
    ),
  );
  const table = el(
    "table",
    { id: "timeline", class: "timeline", dataset: { lanes: String(lanes.length) } },
    el("caption", { class: "visually-hidden" }, "Events in time order, one column per source system", desk ? ", the last for the service desk" : ""),
    head,
    el("tbody", {}, rows),
  );
  // A long journey scrolls inside its own box, so the lane names stay in view.
  const long = view.events.length > 12;
  return el("div", { class: ["timeline-scroll", long && "is-long"], role: "region", "aria-labelledby": "timeline-title", tabindex: "0" }, table);
}

/** A row of the timeline for a person's action: empty system lanes, the card in the desk lane. */
function deskRow(event, systems) {
  return el(
    "tr",
    { class: ["event-row", "desk-row"], dataset: { eventId: event.event_id } },
    el(
      "th",
      { scope: "row", class: "time-cell" },
      el("time", { datetime: event.occurred_at, title: formatDateTime(event.occurred_at) }, formatTime(event.occurred_at)),
    ),
    Array.from({ length: systems }, () => el("td", { class: "lane-cell empty" })),
    el("td", { class: ["lane-cell", "lane-desk"] }, deskCard(event, { flags: page.flags, onSelect: (id) => select(id) })),
  );
}

function eventCard(event) {
  const { facts, quote } = eventFacts(event);
  const source = event.source ?? {};
  const flags = (page.flagsByEvent.get(event.event_id) ?? []).slice().sort((a, b) => severityRank(a.severity) - severityRank(b.severity));
  const speaker = event.payload?.speaker;
  return el(
    "article",
    {
      class: ["event", `fam-${eventFamily(event.type)}`, flags.some((f) => f.status === "open") && "has-open-flag"],
      id: `event-${event.event_id}`,
      dataset: { eventId: event.event_id, type: event.type, system: source.system ?? "" },
      tabindex: "-1",
      "aria-label": `${eventTypeLabel(event.type)} from ${source.system} at ${formatDateTime(event.occurred_at)}`,
    },
    el(
      "header",
      { class: "event-head" },
      el("span", { class: ["event-dot", `fam-${eventFamily(event.type)}`], "aria-hidden": "true" }),
      el("span", { class: "event-type" }, eventTypeLabel(event.type)),
      el("time", { class: "event-time", datetime: event.occurred_at, title: formatDateTime(event.occurred_at) }, formatTime(event.occurred_at)),
    ),
    el("p", { class: "event-system" }, source.system),
    linkedBy(event),
    quote
      ? el(
          "blockquote",
          { class: ["event-quote", speaker && `speaker-${speaker}`], title: quote },
          speaker ? el("span", { class: "speaker" }, `${humanise(speaker)}: `) : null,
          quote,
        )
      : null,
    facts.length
      ? el(
          "dl",
          { class: "facts" },
          facts
            .filter((f) => !(f.key === "speaker" && quote))
            .map((f) => el("div", { class: ["fact", f.warn && "warn"], dataset: { key: f.key } }, el("dt", {}, f.label), el("dd", {}, f.value))),
        )
      : null,
    el(
      "footer",
      { class: "event-meta" },
      [source.channel && humanise(source.channel), source.site, source.actor].filter(Boolean).map((t) => el("span", {}, t)),
      el("span", { class: "event-id" }, event.event_id),
    ),
    flags.length
      ? el(
          "div",
          { class: "event-flags" },
          flags.map((f) =>
            el(
              "button",
              {
                type: "button",
                class: ["event-flag", `sev-${f.severity}`, `is-${f.status}`],
                dataset: { flagId: f.flag_id },
                title: f.message,
                onclick: () => select(f.flag_id),
              },
              el("span", { "aria-hidden": "true" }, "⚑ "),
              ruleLabel(f.rule),
              f.status === "open" ? null : " (resolved)",
            ),
          ),
        )
      : null,
  );
}

function flagsPanel(view) {
  const flags = view.flags
    .slice()
    .sort(
      (a, b) =>
        (a.status === "open" ? 0 : 1) - (b.status === "open" ? 0 : 1) ||
        severityRank(a.severity) - severityRank(b.severity) ||
        String(b.opened_at).localeCompare(String(a.opened_at)),
    );
  const open = flags.filter((f) => f.status === "open").length;
  return el(
    "aside",
    { class: "flags-panel", "aria-labelledby": "flags-title" },
    el(
      "div",
      { class: "section-head" },
      el("h2", { id: "flags-title" }, "Flags"),
      el("p", { class: "muted" }, flags.length ? `${open} open, ${flags.length - open} resolved` : ""),
    ),
    view.conflicts_left_out > 0
      ? el("p", { class: "muted conflicts-left-out" }, `${view.conflicts_left_out} older IDENTITY_CONFLICT flags not shown: see the flags list`)
      : null,
    flags.length
      ? el(
          "ul",
          { class: "flag-cards", id: "flag-cards" },
          flags.map((flag) => el("li", {}, flagCard(flag), flagExtras(flag))),
        )
      : stateMessage({ kind: "empty", title: "No flags", body: "The systems agree about this customer." }),
  );
}

function flagCard(flag) {
  const events = flag.event_ids.length;
  return el(
    "button",
    {
      type: "button",
      class: ["flag-card", `sev-${flag.severity}`, `is-${flag.status}`],
      dataset: { flagId: flag.flag_id, rule: flag.rule },
      "aria-pressed": "false",
      "aria-controls": "timeline",
      onclick: () => select(page.selected === flag.flag_id ? null : flag.flag_id),
    },
    el(
      "span",
      { class: "flag-card-head" },
      severityBadge(flag.severity),
      el("span", { class: "flag-rule", title: ruleHelp(flag.rule) || null }, ruleLabel(flag.rule)),
      statusBadge(flag.status),
    ),
    el("span", { class: "flag-message" }, flag.message),
    flag.status === "resolved" && flag.resolution
      ? el("span", { class: "flag-resolution" }, el("strong", {}, "Resolved"), flag.resolved_at ? ` ${formatDateTime(flag.resolved_at)}` : "", ": ", flag.resolution)
      : null,
    el(
      "span",
      { class: "flag-card-meta" },
      el("span", {}, "Opened ", timeAgo(flag.opened_at)),
      el("span", {}, `${events} ${events === 1 ? "event" : "events"}`),
      flag.sites?.length ? el("span", {}, flag.sites.join(", ")) : null,
    ),
    el("span", { class: "flag-card-action", "aria-hidden": "true" }, "Show in timeline"),
  );
}

// ---------------------------------------------------------------------------------------------
// Handling (actions.js): below each flag card, what people did and the buttons to act.

function flagExtras(flag) {
  const decisions = [];
  if (flag.rule === "IDENTITY_CONFLICT" && canDecide()) {
    const named = conflictIdentifier(flag);
    const identifiers = named ? [named] : page.view.identifiers;
    const tenant = page.view.tenant;
    decisions.push(
      el(
        "div",
        { class: "decision-buttons", role: "group", "aria-label": "Identity decision" },
        decisionButton("merge", { identifiers, tenant, text: "Confirm merge…", customers: conflictCustomers(flag) }),
        decisionButton("split", { identifiers, tenant, text: "Split…" }),
      ),
    );
  }
  return el(
    "div",
    { class: "flag-extras", dataset: { flagId: flag.flag_id } },
    handlingDetails(flag),
    actionBar(flag, { onSaved: (answer) => redrawAfter(answer, flag.flag_id) }),
    decisions,
  );
}

/** Wait until the ledger shows the action, then draw the journey again as it now stands. */
async function redrawAfter(answer, flagId) {
  const view = await waitForAction(page.view.customer_id, flagId, answer.event_id);
  if (!view) return false;
  const selected = page.selected;
  render(view, page.matched);
  if (selected && page.flags.has(selected)) select(selected, { scroll: false, updateHash: false });
  afterSaved(document.querySelector(`.flag-extras[data-flag-id="${CSS.escape(flagId)}"]`), answer);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Selecting a flag highlights the events it points at.

function select(flagId, { scroll = true, updateHash = true } = {}) {
  const flag = flagId ? page.flags.get(flagId) : null;
  page.selected = flag ? flag.flag_id : null;
  const ids = new Set(flag ? flag.event_ids : []);
  for (const card of document.querySelectorAll(".flag-card")) {
    const on = card.dataset.flagId === page.selected;
    card.setAttribute("aria-pressed", String(on));
    card.querySelector(".flag-card-action").textContent = on ? "Shown in timeline" : "Show in timeline";
  }
  const table = document.getElementById("timeline");
  table?.classList.toggle("has-selection", Boolean(flag));
  for (const card of document.querySelectorAll(".event")) {
    const on = ids.has(card.dataset.eventId);
    card.classList.toggle("is-highlighted", on);
    card.closest("tr")?.classList.toggle("is-highlighted", on);
  }
  // People's actions on the selected flag stay in view, without counting as its events.
  for (const card of document.querySelectorAll(".desk-event")) {
    card.classList.toggle("is-related", Boolean(flag) && card.dataset.flagId === page.selected);
  }
  for (const chip of document.querySelectorAll(".event-flag")) {
    chip.classList.toggle("is-selected", chip.dataset.flagId === page.selected);
  }
  const bar = document.getElementById("selection-bar");
  if (bar) {
    if (flag) {
      const present = [...ids].filter((id) => document.getElementById(`event-${id}`)).length;
      bar.replaceChildren(
        severityBadge(flag.severity),
        el("span", { class: "selection-text" }, `Highlighting ${present} ${present === 1 ? "event" : "events"} of `, el("strong", {}, ruleLabel(flag.rule))),
        el("button", { type: "button", class: "button ghost small", onclick: () => select(null) }, "Clear"),
      );
      bar.hidden = false;
    } else {
      bar.hidden = true;
      bar.replaceChildren();
    }
  }
  if (updateHash) {
    const hash = flag ? `#flag=${encodeURIComponent(flag.flag_id)}` : "";
    if (location.hash !== hash) history.replaceState(history.state, "", `${location.pathname}${location.search}${hash}`);
  }
  if (flag) {
    announce(`${ruleLabel(flag.rule)}: ${ids.size} events highlighted in the timeline`);
    const first = document.querySelector(".event.is-highlighted");
    if (scroll && first) first.scrollIntoView({ block: "center", inline: "center", behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth" });
  }
}

function selectFromHash({ scroll }) {
  if (!page.view) return;
  const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
  const flagId = hash.get("flag");
  if (flagId && page.flags.has(flagId)) {
    select(flagId, { scroll, updateHash: false });
    document.querySelector(`.flag-card[data-flag-id="${CSS.escape(flagId)}"]`)?.scrollIntoView({ block: "nearest" });
  } else if (!flagId && page.selected) {
    select(null, { updateHash: false });
  }
}

window.addEventListener("hashchange", () => selectFromHash({ scroll: true }));

// Escape clears the selection.
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && page.selected && !document.querySelector("dialog[open]")) select(null);
});

boot(load);
