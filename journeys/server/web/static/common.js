// Shared by the dashboard and the journey page: the token, the JSON API, labels and formatting.
// No framework and no build step; every page is plain DOM built with `el()`.

export const API_BASE = "/v1";
export const UI_BASE = "/ui";
const TOKEN_KEY = "journeys.token";

// ---------------------------------------------------------------------------------------------
// Labels. The API does not list rules; these are the documented ones, with a fallback to the id.

export const RULES = {
  DATE_MISMATCH: {
    severity: "high",
    label: "Date mismatch",
    help: "A message told the customer a different date or time than the booking holds.",
  },
  DUPLICATE_ORDER: {
    severity: "high",
    label: "Duplicate order",
    help: "Two orders with the same items within a day, both live at once.",
  },
  PAYMENT_FOR_CANCELLED_ORDER: {
    severity: "high",
    label: "Payment on cancelled order",
    help: "A payment stands for an order that was cancelled, with no void or refund.",
  },
  UNRECOGNISED_ENROLMENT: {
    severity: "high",
    label: "Enrolment not recognised",
    help: "A partner could not find a customer the dealer enrolled.",
  },
  RECALL_NOT_VISIBLE: {
    severity: "high",
    label: "Recall not visible",
    help: "A recall was notified but a later lookup could not see it.",
  },
  UNANSWERED_ENQUIRY: {
    severity: "medium",
    label: "Unanswered enquiry",
    help: "The customer got in touch and nobody answered within the response window.",
  },
  REPEATED_ASK: {
    severity: "low",
    label: "Repeated ask",
    help: "The customer was asked for something the journey already held.",
  },
  REFERRAL_LOOP: {
    severity: "medium",
    label: "Referral loop",
    help: "The customer was passed back and forth between parties.",
  },
  LOW_SCORE_AFTER_FLAGS: {
    severity: "medium",
    label: "Low score after flags",
    help: "The customer scored a survey low after flags open in the weeks before it.",
  },
  IDENTITY_CONFLICT: {
    severity: "medium",
    label: "Identity conflict",
    help: "A link was held back: joining these customers would pass a limit. A person decides.",
  },
};

export function ruleLabel(rule) {
  return RULES[rule]?.label ?? rule;
}

export function ruleSeverity(rule) {
  return RULES[rule]?.severity ?? null;
}

export function ruleHelp(rule) {
  return RULES[rule]?.help ?? "";
}

export const SEVERITIES = ["high", "medium", "low"];

export function severityLabel(severity) {
  if (!severity) return "Unknown";
  return severity.charAt(0).toUpperCase() + severity.slice(1);
}

export function severityRank(severity) {
  const rank = SEVERITIES.indexOf(severity);
  return rank === -1 ? SEVERITIES.length : rank;
}

export const IDENTIFIER_KINDS = {
  customer_ref: "Customer ref",
  email: "Email",
  phone: "Phone",
  plate: "Plate",
  vin: "VIN",
  order_id: "Order",
  card_token: "Card token",
  membership_id: "Membership",
  anonymous_id: "Session / cookie",
};

const KIND_ALIASES = {
  mobile: "phone",
  tel: "phone",
  telephone: "phone",
  reg: "plate",
  registration: "plate",
  order: "order_id",
  membership: "membership_id",
  ref: "customer_ref",
  card: "card_token",
  session: "anonymous_id",
  cookie: "anonymous_id",
  mail: "email",
  "e-mail": "email",
};

export function kindLabel(kind) {
  return IDENTIFIER_KINDS[kind] ?? kind;
}

/** The kind as a word inside a sentence: "plate", "order", but "VIN". */
export function kindWord(kind) {
  const label = kindLabel(kind);
  return label === label.toUpperCase() ? label : label.toLowerCase();
}

/** Kinds tried, in order, when a search gives a bare value that is neither phone nor e-mail. */
export const GUESS_KINDS = ["plate", "order_id", "vin", "customer_ref", "membership_id", "card_token", "anonymous_id"];

/**
 * What a search box entry names: a customer id, `kind:value`, or a bare value.
 * Returns {customer_id} | {kind, value} | {value} (kind to be guessed) | null.
 */
export function parseSearch(raw) {
  const text = (raw ?? "").trim();
  if (!text) return null;
  if (/^cus_[0-9a-z]+$/i.test(text)) return { customer_id: text };
  const prefixed = text.match(/^([a-z_-]+)\s*[:=]\s*(.+)$/i);
  if (prefixed) {
    const word = prefixed[1].toLowerCase();
    const kind = word in IDENTIFIER_KINDS ? word : KIND_ALIASES[word];
    if (kind) return { kind, value: prefixed[2].trim() };
  }
  if (/^[^\s@]+@[^\s@]+$/.test(text)) return { kind: "email", value: text };
  const digits = text.replace(/\D/g, "");
  if (/^\+?[\d\s().-]+$/.test(text) && digits.length >= 7) return { kind: "phone", value: text };
  return { value: text };
}

/** The journey page's address for a search, or null when there is nothing to search. */
export function journeyUrlForSearch(raw) {
  const found = parseSearch(raw);
  if (!found) return null;
  const params = new URLSearchParams();
  if (found.customer_id) params.set("customer_id", found.customer_id);
  else if (found.kind) params.set("identifier", `${found.kind}:${found.value}`);
  else params.set("identifier", found.value);
  return `${UI_BASE}/journey?${params}`;
}

export function journeyUrl(customerId, flagId) {
  const params = new URLSearchParams({ customer_id: customerId });
  return `${UI_BASE}/journey?${params}${flagId ? `#flag=${encodeURIComponent(flagId)}` : ""}`;
}

// ---------------------------------------------------------------------------------------------
// Event types and the facts worth showing for each.

export const EVENT_TYPES = {
  "form.submitted": "Form submitted",
  "form.failed": "Form failed",
  "chat.message": "Chat message",
  "message.received": "Message received",
  "enquiry.responded": "Enquiry answered",
  "call.logged": "Call",
  "referral.made": "Referral",
  "booking.created": "Booking created",
  "booking.changed": "Booking changed",
  "booking.cancelled": "Booking cancelled",
  "message.sent": "Message sent",
  "survey.responded": "Survey response",
  "order.placed": "Order placed",
  "order.confirmed": "Order confirmed",
  "order.cancelled": "Order cancelled",
  "payment.authorised": "Payment authorised",
  "payment.captured": "Payment captured",
  "payment.voided": "Payment voided",
  "payment.refunded": "Payment refunded",
  "payment.declined": "Payment declined",
  "enrolment.confirmed": "Enrolment confirmed",
  "enrolment.lookup": "Enrolment lookup",
  "recall.notified": "Recall notified",
  "recall.lookup": "Recall lookup",
};

export function eventTypeLabel(type) {
  return EVENT_TYPES[type] ?? type;
}

/** The broad family of an event type (`booking`, `payment`…), used for its icon colour. */
export function eventFamily(type) {
  return (type ?? "").split(".")[0] || "other";
}

const FACT_LABELS = {
  form: "Form",
  requested_slot: "Asked for",
  slot: "Slot",
  stated_slot: "Told customer",
  effective_from: "Effective",
  booking_id: "Booking",
  service: "Service",
  medium: "Via",
  speaker: "Speaker",
  asked_for: "Asked for",
  provided: "Provided",
  in_reply_to: "Reply to",
  via: "Via",
  direction: "Direction",
  reason: "Reason",
  outcome: "Outcome",
  transferred_to: "Transferred to",
  to: "Referred to",
  template: "Template",
  score: "Score",
  order_id: "Order",
  items: "Items",
  amount: "Amount",
  payment_id: "Payment",
  programme: "Programme",
  found: "Found",
  recall_code: "Recall",
  error: "Error",
};

const SLOT_FIELDS = new Set(["requested_slot", "slot", "stated_slot", "effective_from"]);
const QUOTE_FIELDS = ["text", "message", "comment"];
const HIDDEN_FIELDS = new Set(["currency", "scale", ...QUOTE_FIELDS]);

/** The payload as [label, value, {emphasis}] facts plus an optional quote, for an event card. */
export function eventFacts(event) {
  const payload = event.payload ?? {};
  const facts = [];
  for (const [key, value] of Object.entries(payload)) {
    if (HIDDEN_FIELDS.has(key) || value === null || value === undefined || value === "") continue;
    let shown;
    if (SLOT_FIELDS.has(key)) shown = formatSlot(String(value));
    else if (key === "amount") shown = formatAmount(value, payload.currency);
    else if (key === "score") shown = payload.scale ? `${value} / ${payload.scale}` : String(value);
    else if (key === "found") shown = value ? "Yes" : "No";
    else if (Array.isArray(value)) shown = value.join(", ");
    else if (typeof value === "object") shown = JSON.stringify(value);
    else shown = String(value);
    facts.push({
      key,
      label: FACT_LABELS[key] ?? humanise(key),
      value: shown,
      warn: key === "found" && value === false,
    });
  }
  const quoteKey = QUOTE_FIELDS.find((k) => typeof payload[k] === "string" && payload[k]);
  return { facts, quote: quoteKey ? payload[quoteKey] : null, quoteKey };
}

export function humanise(key) {
  const words = String(key).replace(/[_.-]+/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function formatAmount(amount, currency) {
  const number = Number(amount);
  if (!Number.isFinite(number)) return `${amount}${currency ? ` ${currency}` : ""}`;
  if (currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(number);
    } catch {
      return `${number.toFixed(2)} ${currency}`;
    }
  }
  return number.toLocaleString();
}

// ---------------------------------------------------------------------------------------------
// Dates. Event and flag times are instants, shown in the reader's time zone; slots are shown
// as written, in their own offset, because that is what the customer read.

const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** A slot as written: `2026-11-06T10:30:00+00:00` → `Fri 6 Nov 10:30`; a plain date has no time. */
export function formatSlot(text) {
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.exec(text);
  if (!match) return text;
  const [, y, m, d, hh, mm, offset] = match;
  const weekday = WEEKDAYS[new Date(Date.UTC(+y, +m - 1, +d)).getUTCDay()];
  let shown = `${weekday} ${+d} ${MONTHS[+m - 1]}`;
  if (+y !== new Date().getFullYear()) shown += ` ${y}`;
  if (hh !== undefined) {
    shown += ` ${hh}:${mm}`;
    if (offset && offset !== "Z" && !/^[+-]00:?00$/.test(offset)) shown += ` (UTC${offset})`;
  }
  return shown;
}

function sameYear(date) {
  return date.getFullYear() === new Date().getFullYear();
}

export function formatDateTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso ?? "";
  return new Intl.DateTimeFormat(undefined, {
    weekday: "short",
    day: "numeric",
    month: "short",
    year: sameYear(date) ? undefined : "numeric",
    hour: "2-digit",
    minute: "2-digit",
  }).format(date);
}

export function formatDay(iso) {
  const date = new Date(iso);
  return new Intl.DateTimeFormat(undefined, {
    weekday: "long",
    day: "numeric",
    month: "long",
    year: "numeric",
  }).format(date);
}

export function formatTime(iso) {
  const date = new Date(iso);
  return new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" }).format(date);
}

export function dayKey(iso) {
  const date = new Date(iso);
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

const RELATIVE_STEPS = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["week", 7 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
];

/** `3 hours ago`, `yesterday`, `just now`. */
export function formatRelative(iso, now = Date.now()) {
  const then = new Date(iso).getTime();
  if (Number.isNaN(then)) return "";
  const seconds = (then - now) / 1000;
  if (Math.abs(seconds) < 60) return "just now";
  const format = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  for (const [unit, size] of RELATIVE_STEPS) {
    if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
  }
  return "just now";
}

/** A <time> element showing a relative time, with the absolute one as its tooltip. */
export function timeAgo(iso) {
  return el("time", { datetime: iso, title: formatDateTime(iso) }, formatRelative(iso));
}

// ---------------------------------------------------------------------------------------------
// DOM helper.

/** Create an element: el("a", {href, class: "x", onclick}, "text", childNode, [more]). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      node.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function severityBadge(severity) {
  return el(
    "span",
    { class: ["badge", `sev-${severity ?? "unknown"}`], dataset: { severity: severity ?? "" } },
    el("span", { class: "badge-dot", "aria-hidden": "true" }),
    severityLabel(severity),
  );
}

export function statusBadge(status) {
  return el("span", { class: ["status", `status-${status}`] }, status === "open" ? "Open" : humanise(status));
}

/** A message block for empty, error and not-found states. */
export function stateMessage({ kind = "empty", title, body, action }) {
  return el(
    "div",
    { class: ["state", `state-${kind}`], role: kind === "error" ? "alert" : "status" },
    el("div", { class: "state-icon", "aria-hidden": "true" }, kind === "error" ? "!" : kind === "empty" ? "✓" : searchIcon()),
    el("h2", { class: "state-title" }, title),
    body ? el("p", { class: "state-body" }, body) : null,
    action ?? null,
  );
}

// ---------------------------------------------------------------------------------------------
// The token: from `#token=…` once (then stripped from the address bar), then session storage.

export function takeTokenFromHash() {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
  const token = hash.get("token");
  if (token === null) return;
  if (token.trim()) setToken(token.trim());
  hash.delete("token");
  const rest = hash.toString();
  history.replaceState(history.state, "", `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`);
}

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// ---------------------------------------------------------------------------------------------
// The JSON API.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

export class AuthError extends ApiError {}

/** GET a JSON document from the API; throws AuthError on 401 and ApiError otherwise. */
export async function apiGet(path, params = {}) {
  const token = getToken();
  if (!token) throw new AuthError(401, "unauthorized", "");
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const url = `${API_BASE}${path}${query.size ? `?${query}` : ""}`;
  let response;
  try {
    response = await fetch(url, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", "The ledger could not be reached. Check that it is running, then try again.");
  }
  return answerOf(response);
}

/** POST a JSON document to the API; the answer is read as `apiGet` reads it. */
export async function apiPost(path, document) {
  const token = getToken();
  if (!token) throw new AuthError(401, "unauthorized", "");
  let response;
  try {
    response = await fetch(`${API_BASE}${path}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify(document),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", "The ledger could not be reached. Nothing was saved; try again.");
  }
  return answerOf(response);
}

/** The JSON body of a successful answer; otherwise AuthError on 401, else ApiError with the
 * server's message and hint. */
async function answerOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.ok && body !== null) return body;
  const error = body?.error ?? {};
  const message = error.message || `The ledger answered ${response.status} ${response.statusText}`.trim();
  if (response.status === 401) throw new AuthError(401, error.code ?? "unauthorized", message);
  const failure = new ApiError(response.status, error.code ?? "error", message);
  failure.hint = error.hint ?? null;
  throw failure;
}

// ---------------------------------------------------------------------------------------------
// Page shell: the header search, sign-in and sign-out.

let reload = null;

/**
 * Start a page: take the token from the address, then run `load()`. Without a token, or when
 * the API refuses it, a sign-in form replaces the page until a token is given.
 */
export function boot(load) {
  reload = load;
  takeTokenFromHash();
  setupSearch();
  setupSignOut();
  if (!getToken()) {
    showSignIn();
    return;
  }
  run();
}

async function run() {
  hideSignIn();
  try {
    await reload();
  } catch (error) {
    handleError(error);
  }
}

/** What every page does with an error it did not handle itself: 401 means sign in again. */
export function handleError(error) {
  if (error instanceof AuthError) {
    // Several requests can be refused at once: the first one shows the form.
    if (!document.getElementById("signin").hidden) return true;
    const hadToken = Boolean(getToken());
    clearToken();
    showSignIn(
      hadToken
        ? `The ledger did not accept that token (${error.message || "unauthorized"}). Check it and paste it again.`
        : null,
    );
    return true;
  }
  console.error(error);
  return false;
}

function setupSearch() {
  const form = document.getElementById("search-form");
  if (!form) return;
  const input = form.querySelector("input");
  const hint = document.getElementById("search-hint");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const url = journeyUrlForSearch(input.value);
    if (!url) {
      input.focus();
      if (hint) hint.hidden = false;
      return;
    }
    location.assign(url);
  });
  input.addEventListener("input", () => {
    if (hint) hint.hidden = true;
  });
  // "/" focuses the search box, as in most products.
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement;
    if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      input.focus();
      input.select();
    }
  });
}

function setupSignOut() {
  const button = document.getElementById("sign-out");
  if (!button) return;
  button.hidden = !getToken();
  button.addEventListener("click", () => {
    clearToken();
    showSignIn(null, "You are signed out.");
  });
}

function showSignIn(error = null, notice = null) {
  const main = document.getElementById("main");
  const panel = document.getElementById("signin");
  const signOut = document.getElementById("sign-out");
  if (signOut) signOut.hidden = true;
  main.hidden = true;
  panel.replaceChildren(signInForm(error, notice));
  panel.hidden = false;
  document.body.classList.add("signed-out");
  panel.querySelector("input").focus();
}

function hideSignIn() {
  const main = document.getElementById("main");
  const panel = document.getElementById("signin");
  const signOut = document.getElementById("sign-out");
  panel.hidden = true;
  panel.replaceChildren();
  main.hidden = false;
  document.body.classList.remove("signed-out");
  if (signOut) signOut.hidden = !getToken();
}

function signInForm(error, notice) {
  const input = el("input", {
    id: "token-input",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": error ? "signin-help signin-error" : "signin-help",
    "aria-invalid": error ? "true" : null,
  });
  const form = el(
    "form",
    {
      class: "signin-card",
      "aria-labelledby": "signin-title",
      onsubmit: (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (!token) {
          input.focus();
          return;
        }
        setToken(token);
        run();
      },
    },
    el("div", { class: "signin-mark", "aria-hidden": "true" }, logo()),
    el("h1", { id: "signin-title" }, "Sign in to Journey Ledger"),
    el(
      "p",
      { id: "signin-help", class: "muted" },
      "Paste the access token for this ledger. ",
      el("code", {}, "journeys up"),
      " prints it as ",
      el("code", {}, "JOURNEYS_TOKEN"),
      ", and prints a link that signs you in directly.",
    ),
    notice ? el("p", { class: "notice", role: "status" }, notice) : null,
    error ? el("p", { id: "signin-error", class: "form-error", role: "alert" }, error) : null,
    el("label", { for: "token-input" }, "Access token"),
    input,
    el("button", { type: "submit", class: "button primary" }, "Sign in"),
    el("p", { class: "fine-print muted" }, "The token is kept in this browser tab only, until you close it or sign out."),
  );
  return form;
}

function searchIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 20 20");
  svg.setAttribute("width", "20");
  svg.setAttribute("height", "20");
  svg.innerHTML =
    '<circle cx="8.5" cy="8.5" r="5.5" fill="none" stroke="currentColor" stroke-width="2"/>' +
    '<path d="m13 13 4.5 4.5" stroke="currentColor" stroke-width="2" stroke-linecap="round"/>';
  return svg;
}

export function logo() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "28");
  svg.setAttribute("height", "28");
  svg.innerHTML =
    '<rect width="24" height="24" rx="6" fill="currentColor"/>' +
    '<path d="M6 7h12M6 12h8M6 17h10" stroke="#fff" stroke-width="2" stroke-linecap="round"/>' +
    '<circle cx="17.5" cy="12" r="2" fill="#fbbf24"/>';
  return svg;
}

/** Set the live region's text so screen readers hear what just loaded. */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (region) region.textContent = text;
}
