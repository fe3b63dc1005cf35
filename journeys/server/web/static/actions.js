// Acting on flags, shared by the dashboard and the journey page: who is signed in and what they
// may do (`GET /v1/me`), each flag's handling (who saw it, who has it, who resolved it), the
// action buttons with their dialog, and the admin's identity decisions. Every user-supplied
// string goes into the page as text (`el()` makes text nodes), never as markup.
import {
  AuthError,
  announce,
  apiGet,
  apiPost,
  el,
  formatDateTime,
  formatTime,
  handleError,
  humanise,
  kindWord,
  ruleLabel,
  timeAgo,
} from "./common.js";

// ---------------------------------------------------------------------------------------------
// Who is signed in.

let me = null;
let meLoading = null;

/** The signed-in user `{user, role, tenants}`; a ledger without `/v1/me` makes a reader. */
export function loadMe() {
  if (me) return Promise.resolve(me);
  if (!meLoading) {
    meLoading = apiGet("/me")
      .then((found) => {
        me = found;
        return me;
      })
      .catch((error) => {
        meLoading = null;
        if (error instanceof AuthError) throw error;
        me = { user: null, role: "viewer", tenants: [] };
        return me;
      });
  }
  return meLoading;
}

/** The user as last loaded (null before `loadMe()` answered). */
export function currentUser() {
  return me;
}

/** Managers and admins act on flags. */
export function canAct(user = me) {
  return user?.role === "manager" || user?.role === "admin";
}

/** Admins make identity decisions. */
export function canDecide(user = me) {
  return user?.role === "admin";
}

/** Show who is signed in, in the header's `#whoami` (when the page has one). */
export function showWho(user = me) {
  const slot = document.getElementById("whoami");
  if (!slot || !user?.user) return;
  slot.replaceChildren(el("span", { class: "whoami-user" }, user.user), el("span", { class: "whoami-role" }, humanise(user.role)));
  slot.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Writing to the API.

/** Ask the ledger to record an action on a flag: 202 `{event_id, flag_id, action, tenant, customer_id}`. */
export function postAction(flagId, action, fields = {}) {
  const document = { action };
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined && value !== null) document[key] = value;
  }
  return apiPost(`/flags/${encodeURIComponent(flagId)}/actions`, document);
}

const POLL_INTERVAL_MS = 500;
const POLL_TRIES = 20;

/**
 * Read the flag's journey again until its handling lists the action's event (the ledger folds
 * it within seconds). Returns the journey, or null when it did not show in time.
 */
export async function waitForAction(customerId, flagId, eventId) {
  for (let attempt = 0; attempt < POLL_TRIES; attempt += 1) {
    if (attempt) await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    const journey = await apiGet(`/journeys/${encodeURIComponent(customerId)}`);
    const flag = journey.flags?.find((f) => f.flag_id === flagId);
    if (flag?.handling?.actions?.some((a) => a.event_id === eventId)) return journey;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Handling, as the flag document carries it.

export const HANDLING_STATES = {
  unacknowledged: "Unacknowledged",
  acknowledged: "Acknowledged",
  assigned: "Assigned",
  snoozed: "Snoozed",
  resolved: "Resolved by hand",
};

const ACTION_LABELS = {
  acknowledge: "Acknowledged",
  assign: "Assigned",
  note: "Noted",
  resolve: "Resolved",
  reopen: "Reopened",
  snooze: "Snoozed",
};

/** The handling of a flag, with `state: "unacknowledged"` when nobody acted. */
export function handlingOf(flag) {
  return flag.handling ?? { state: "unacknowledged", notes: [], actions: [], action_count: 0 };
}

function stateBadge(state) {
  return el("span", { class: ["handling-state", `handling-${state}`], dataset: { state } }, HANDLING_STATES[state] ?? humanise(state));
}

function when(iso) {
  return iso ? [" ", timeAgo(iso)] : null;
}

/** One line: the state, then who acknowledged, who has it, who resolved it and when. */
export function handlingSummary(flag) {
  const h = handlingOf(flag);
  const parts = [];
  if (h.acknowledged_by) parts.push(el("span", { class: "handling-who", dataset: { part: "acknowledged" } }, `acknowledged by ${h.acknowledged_by}`, when(h.acknowledged_at)));
  if (h.assignee) parts.push(el("span", { class: "handling-who", dataset: { part: "assigned" } }, `assigned to ${h.assignee}`));
  if (h.resolved_by) parts.push(el("span", { class: "handling-who", dataset: { part: "resolved" } }, `resolved by ${h.resolved_by}`, when(h.resolved_at)));
  if (h.state === "snoozed" && h.snoozed_until) {
    parts.push(el("span", { class: "handling-who", dataset: { part: "snoozed" } }, `snoozed until ${formatDateTime(h.snoozed_until)}`));
  }
  if (h.reopened_because) parts.push(el("span", { class: "handling-who", dataset: { part: "reopened" } }, h.reopened_because));
  return el(
    "p",
    { class: "handling-summary", dataset: { state: h.state } },
    el("span", { class: "visually-hidden" }, "Handling: "),
    stateBadge(h.state),
    parts,
  );
}

/** What an action did, in words: "Assigned to leeds-desk", "Snoozed until …". */
export function actionText(action) {
  const label = ACTION_LABELS[action.action] ?? humanise(action.action);
  if (action.action === "assign" && action.assignee) return `${label} to ${action.assignee}`;
  if (action.action === "snooze" && action.until) return `${label} until ${formatDateTime(action.until)}`;
  return label;
}

/** The journey page's view of a flag's handling: the summary, the notes and every action. */
export function handlingDetails(flag) {
  const h = handlingOf(flag);
  const actions = h.actions ?? [];
  const notes = h.notes ?? [];
  return el(
    "div",
    { class: "handling-details" },
    handlingSummary(flag),
    notes.length
      ? el(
          "div",
          { class: "handling-notes" },
          el("h4", {}, notes.length === 1 ? "Note" : `Notes (${notes.length})`),
          el(
            "ul",
            {},
            notes.map((n) =>
              el("li", { class: "handling-note" }, el("p", { class: "note-text" }, n.text), el("p", { class: "note-meta muted" }, n.by, " · ", timeAgo(n.at))),
            ),
          ),
        )
      : null,
    actions.length
      ? el(
          "details",
          { class: "handling-history" },
          el("summary", {}, `History (${h.action_count ?? actions.length} ${(h.action_count ?? actions.length) === 1 ? "action" : "actions"})`),
          el(
            "ol",
            {},
            actions.map((a) =>
              el(
                "li",
                { class: "handling-action", dataset: { action: a.action, eventId: a.event_id } },
                el("span", { class: "action-what" }, actionText(a)),
                " by ",
                el("span", { class: "action-by" }, a.by),
                " ",
                el("time", { datetime: a.at, title: a.at }, formatDateTime(a.at)),
                a.note ? el("span", { class: "action-note" }, ": ", a.note) : null,
              ),
            ),
          ),
        )
      : null,
  );
}

// ---------------------------------------------------------------------------------------------
// The service desk: the events people wrote about the ledger (handling and identity decisions).

/** Whether an event is a person's action on a flag or an identity decision. */
export function isDeskEvent(event) {
  return /^(flag|identity)\./.test(event?.type ?? "");
}

const DECISION_LABELS = {
  "identity.blocked": "Identifier blocked",
  "identity.unblocked": "Identifier unblocked",
  "identity.split": "Customer split",
  "identity.merge_confirmed": "Merge confirmed",
};

const ACTION_OF_TYPE = {
  "flag.acknowledged": "acknowledge",
  "flag.assigned": "assign",
  "flag.noted": "note",
  "flag.resolved": "resolve",
  "flag.reopened": "reopen",
  "flag.snoozed": "snooze",
};

/** A card for the service desk lane; `flags` maps flag ids to flags, `onSelect(flagId)`. */
export function deskCard(event, { flags = new Map(), onSelect = null } = {}) {
  const payload = event.payload ?? {};
  const action = ACTION_OF_TYPE[event.type];
  const title = action
    ? actionText({ action, assignee: payload.assignee, until: payload.until })
    : DECISION_LABELS[event.type] ?? humanise(event.type);
  const by = payload.by ?? payload.decided_by ?? event.source?.actor ?? "";
  const flag = payload.flag_id ? flags.get(payload.flag_id) : null;
  const text = payload.note ?? payload.reason ?? null;
  return el(
    "article",
    {
      class: ["event", "desk-event", action && `desk-${action}`],
      id: `event-${event.event_id}`,
      dataset: { eventId: event.event_id, type: event.type, system: event.source?.system ?? "", flagId: payload.flag_id ?? "" },
      tabindex: "-1",
      "aria-label": `${title} by ${by} at ${formatDateTime(event.occurred_at)}`,
    },
    el(
      "header",
      { class: "event-head" },
      el("span", { class: "event-dot desk-dot", "aria-hidden": "true" }),
      el("span", { class: "event-type" }, title),
      el("time", { class: "event-time", datetime: event.occurred_at, title: formatDateTime(event.occurred_at) }, formatTime(event.occurred_at)),
    ),
    el("p", { class: "event-system desk-by" }, "by ", by),
    text ? el("blockquote", { class: "event-quote desk-note" }, text) : null,
    payload.flag_id
      ? el(
          "div",
          { class: "event-flags" },
          el(
            "button",
            {
              type: "button",
              class: ["event-flag", flag && `sev-${flag.severity}`],
              dataset: { flagId: payload.flag_id },
              disabled: !flag || !onSelect,
              onclick: () => onSelect?.(payload.flag_id),
            },
            el("span", { "aria-hidden": "true" }, "⚑ "),
            flag ? ruleLabel(flag.rule) : payload.flag_id,
          ),
        )
      : null,
    el("footer", { class: "event-meta" }, el("span", { class: "event-id" }, event.event_id)),
  );
}

// ---------------------------------------------------------------------------------------------
// The action buttons.

const DIALOGS = {
  assign: {
    title: "Assign this flag",
    submit: "Assign",
    fields: (flag) => [
      { name: "assignee", label: "Assign to", type: "text", help: "A person (e.g. sam@acme) or a team.", value: handlingOf(flag).assignee ?? "", suggest: true },
      { name: "note", label: "Note (optional)", type: "textarea" },
    ],
  },
  note: {
    title: "Add a note",
    submit: "Add note",
    fields: () => [{ name: "note", label: "Note", type: "textarea", help: "Everyone who reads this flag sees the note and who wrote it." }],
  },
  resolve: {
    title: "Resolve this flag",
    submit: "Resolve",
    fields: () => [{ name: "note", label: "Reason", type: "textarea", help: "Required: what was done, e.g. “called the customer and rebooked”." }],
  },
  snooze: {
    title: "Snooze this flag",
    submit: "Snooze",
    fields: () => [
      { name: "until", label: "Until", type: "datetime-local", value: defaultSnooze(), help: "In your time zone. The flag comes back on its own then." },
      { name: "note", label: "Note (optional)", type: "textarea" },
    ],
  },
};

/** The actions that make sense for a flag now, in the order the buttons show. */
export function actionsFor(flag) {
  const h = handlingOf(flag);
  const resolved = flag.status === "resolved" || h.state === "resolved";
  const list = [];
  if (!resolved && h.state === "unacknowledged") list.push(["acknowledge", "Acknowledge"]);
  if (!resolved) list.push(["assign", "Assign…"]);
  list.push(["note", "Note…"]);
  if (!resolved) list.push(["resolve", "Resolve…"]);
  if (h.state === "resolved") list.push(["reopen", "Reopen"]);
  if (!resolved) list.push(["snooze", "Snooze…"]);
  return list;
}

/**
 * The buttons for a flag (managers and admins only; null for a reader). `onSaved(answer)` is
 * called after a 202 and should wait for the ledger and redraw; it returns false when the
 * ledger did not show the action in time.
 */
export function actionBar(flag, { onSaved, label = null } = {}) {
  if (!canAct()) return null;
  const status = el("p", { class: "action-status", role: "status", "aria-live": "polite" });
  const error = el("p", { class: "action-error form-error", role: "alert", hidden: true });
  const bar = el("div", { class: "flag-actions", role: "group", "aria-label": label ?? `Act on ${ruleLabel(flag.rule)}`, dataset: { flagId: flag.flag_id } });

  const saved = async (answer) => {
    error.hidden = true;
    status.textContent = "Saved, waiting for the ledger…";
    bar.classList.add("is-saving");
    for (const b of bar.querySelectorAll("button")) b.disabled = true;
    let shown = false;
    try {
      shown = await onSaved(answer);
    } catch (failure) {
      if (failure instanceof AuthError) handleError(failure);
      else {
        status.textContent = `Saved (${answer.event_id}), but the flag could not be read again: ${failure.message}`;
      }
    }
    if (!bar.isConnected) return;
    bar.classList.remove("is-saving");
    for (const b of bar.querySelectorAll("button")) b.disabled = false;
    if (!shown) status.textContent = `Saved (${answer.event_id}). The ledger has not shown it yet: reload in a moment.`;
  };

  const run = async (action, button) => {
    error.hidden = true;
    if (DIALOGS[action]) {
      const answer = await openActionDialog(flag, action, button);
      if (answer) await saved(answer);
      return;
    }
    button.disabled = true;
    try {
      const answer = await postAction(flag.flag_id, action);
      await saved(answer);
    } catch (failure) {
      if (failure instanceof AuthError) handleError(failure);
      else showError(error, failure);
    } finally {
      if (button.isConnected) button.disabled = false;
    }
  };

  for (const [action, text] of actionsFor(flag)) {
    const button = el("button", { type: "button", class: ["button", "small", "secondary"], dataset: { action } }, text);
    button.addEventListener("click", () => run(action, button));
    bar.append(button);
  }
  return el("div", { class: "flag-actions-wrap" }, bar, status, error);
}

function showError(node, failure) {
  node.replaceChildren(failure.message ?? "");
  if (failure.hint) node.append(el("span", { class: "error-hint" }, ` (${failure.hint})`));
  node.hidden = false;
}

function openActionDialog(flag, action, opener) {
  const spec = DIALOGS[action];
  return openDialog({
    title: spec.title,
    subtitle: `${ruleLabel(flag.rule)}: ${flag.message}`,
    fields: spec.fields(flag),
    submitLabel: spec.submit,
    opener,
    submit: (values) => {
      const fields = {};
      if (values.note !== undefined && values.note !== "") fields.note = values.note;
      if (action === "resolve" || action === "note") fields.note = values.note ?? "";
      if (values.assignee !== undefined) fields.assignee = values.assignee;
      if (values.until !== undefined) fields.until = values.until ? localToRfc3339(values.until) : "";
      return postAction(flag.flag_id, action, fields);
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Identity decisions (admins).

const DECISION_DIALOGS = {
  block: { title: "Block this identifier", submit: "Block", help: "A blocked identifier never links events again (for a shared value: a family phone, a fleet e-mail)." },
  unblock: { title: "Unblock this identifier", submit: "Unblock", help: "The identifier links events again." },
  merge: { title: "Confirm the merge", submit: "Confirm merge", help: "The identifier belongs to one person: the customers it names are joined." },
  split: { title: "Split along this identifier", submit: "Split", help: "The identifier does not join these customers: they stay apart." },
};

/**
 * A button opening the decision dialog for `identifiers` (`[{kind, value}]`, the first chosen).
 * With `customers` (a merge on an IDENTITY_CONFLICT flag: the two it names), the decision names
 * them and the identifier goes as `via`: the ledger checks it is held between them.
 */
export function decisionButton(decision, { identifiers, tenant, text, customers = null, onDecided = null }) {
  if (!canDecide() || !identifiers.length) return null;
  const button = el("button", { type: "button", class: "button small secondary decision-button", dataset: { decision } }, text);
  const status = el("span", { class: "decision-status", role: "status" });
  button.addEventListener("click", async () => {
    const spec = DECISION_DIALOGS[decision];
    const answer = await openDialog({
      title: spec.title,
      subtitle: spec.help,
      opener: button,
      submitLabel: spec.submit,
      fields: [
        identifiers.length > 1
          ? {
              name: "identifier",
              label: "Identifier",
              type: "select",
              options: identifiers.map((i) => [`${i.kind}:${i.value}`, `${kindWord(i.kind)} ${i.value}`]),
            }
          : { name: "identifier", label: "Identifier", type: "fixed", value: `${identifiers[0].kind}:${identifiers[0].value}`, shown: `${kindWord(identifiers[0].kind)} ${identifiers[0].value}` },
        { name: "reason", label: "Reason", type: "textarea", help: "Required: why, for whoever reads the journey later." },
      ],
      submit: (values) =>
        apiPost(
          "/identity/decisions",
          decision === "merge" && customers?.length === 2
            ? { decision, customers, via: values.identifier, tenant, reason: values.reason ?? "" }
            : { decision, identifier: values.identifier, tenant, reason: values.reason ?? "" },
        ),
    });
    if (answer) {
      status.textContent = `Decision recorded (${answer.event_id}): the journey changes once the ledger applies it.`;
      onDecided?.(answer);
    }
  });
  return el("span", { class: "decision" }, button, status);
}

/** The customers an IDENTITY_CONFLICT flag's held link would have joined (from its message), or null. */
export function conflictCustomers(flag) {
  const match = /would have joined (.+?): /.exec(flag.message ?? "");
  const customers = match ? match[1].match(/cus_[0-9a-f]{16}/g) ?? [] : [];
  return customers.length === 2 ? customers : null;
}

/** The identifier an IDENTITY_CONFLICT flag is about, read from its message ("phone +44… (system) would…"). */
export function conflictIdentifier(flag) {
  const match = /^([a-z_]+) (.+?) \([^()]*\) would have joined/.exec(flag.message ?? "");
  return match ? { kind: match[1], value: match[2] } : null;
}

// ---------------------------------------------------------------------------------------------
// The dialog: a native <dialog> (focus stays inside, Escape closes it), errors from the API shown.

let dialogCount = 0;

/**
 * Open a modal form. `fields`: [{name, label, type: text|textarea|datetime-local|select|fixed,
 * value, help, options}]. `submit(values)` posts; its answer resolves the promise, its ApiError
 * is shown in the dialog. Resolves null when the dialog is cancelled.
 */
export function openDialog({ title, subtitle = null, fields, submitLabel, submit, opener = null }) {
  const id = `dlg-${++dialogCount}`;
  return new Promise((resolve) => {
    let answer = null;
    const error = el("p", { id: `${id}-error`, class: "form-error dialog-error", role: "alert", hidden: true });
    const inputs = new Map();
    const extras = [];
    const rows = fields.map((field, index) => {
      const fieldId = `${id}-${field.name}`;
      const helpId = field.help ? `${fieldId}-help` : null;
      let input;
      if (field.type === "fixed") {
        inputs.set(field.name, { value: field.value });
        return el("div", { class: "field" }, el("span", { class: "field-label" }, field.label), el("p", { class: "fixed-value" }, field.shown ?? field.value));
      }
      if (field.type === "textarea") {
        input = el("textarea", { id: fieldId, name: field.name, rows: "3", "aria-describedby": [helpId, `${id}-error`].filter(Boolean).join(" ") });
        input.value = field.value ?? "";
      } else if (field.type === "select") {
        input = el("select", { id: fieldId, name: field.name }, field.options.map(([value, text]) => el("option", { value }, text)));
      } else {
        input = el("input", {
          id: fieldId,
          name: field.name,
          type: field.type,
          autocomplete: "off",
          spellcheck: "false",
          "aria-describedby": [helpId, `${id}-error`].filter(Boolean).join(" "),
        });
        input.value = field.value ?? "";
        if (field.suggest && me?.user) {
          const listId = `${fieldId}-list`;
          input.setAttribute("list", listId);
          extras.push(el("datalist", { id: listId }, el("option", { value: me.user })));
        }
      }
      inputs.set(field.name, input);
      return el(
        "div",
        { class: "field", dataset: { index: String(index) } },
        el("label", { for: fieldId }, field.label),
        input,
        field.help ? el("p", { id: helpId, class: "field-help muted" }, field.help) : null,
      );
    });
    const submitButton = el("button", { type: "submit", class: "button primary" }, submitLabel);
    const cancel = el("button", { type: "button", class: "button ghost" }, "Cancel");
    const form = el(
      "form",
      { class: "dialog-form", novalidate: true },
      el("h2", { id: `${id}-title`, class: "dialog-title" }, title),
      subtitle ? el("p", { class: "dialog-subtitle muted" }, subtitle) : null,
      rows,
      extras,
      error,
      el("div", { class: "dialog-buttons" }, cancel, submitButton),
    );
    const dialog = el("dialog", { class: "dialog", "aria-labelledby": `${id}-title` }, form);
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener?.isConnected) opener.focus();
      resolve(answer);
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = {};
      for (const [name, input] of inputs) if (input) values[name] = input.value;
      error.hidden = true;
      submitButton.disabled = true;
      form.setAttribute("aria-busy", "true");
      try {
        answer = await submit(values);
        dialog.close();
      } catch (failure) {
        if (failure instanceof AuthError) {
          dialog.close();
          handleError(failure);
          return;
        }
        showError(error, failure);
        const field = /^([a-z_]+):/.exec(failure.message ?? "")?.[1];
        const target = inputs.get(field);
        for (const input of inputs.values()) input?.removeAttribute?.("aria-invalid");
        if (target?.focus) {
          target.setAttribute("aria-invalid", "true");
          target.focus();
        }
      } finally {
        submitButton.disabled = false;
        form.removeAttribute("aria-busy");
      }
    });
    document.body.append(dialog);
    dialog.showModal();
    const first = [...inputs.values()].find((input) => input?.focus);
    first?.focus();
  });
}

// ---------------------------------------------------------------------------------------------
// Times: a datetime-local value is the reader's wall clock; the API wants RFC 3339 with an offset.

function pad(n) {
  return String(Math.trunc(Math.abs(n))).padStart(2, "0");
}

/** `2026-11-06T09:00` (the browser's local time) → `2026-11-06T09:00:00+00:00` with its offset. */
export function localToRfc3339(value) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return value;
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `${sign}${pad(offset / 60)}:${pad(offset % 60)}`
  );
}

/** Tomorrow at 09:00 in the reader's time zone, as a datetime-local value. */
function defaultSnooze() {
  const date = new Date(Date.now() + 24 * 3600 * 1000);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T09:00`;
}

// ---------------------------------------------------------------------------------------------
// The dashboard's row: the handling line and, for managers, the buttons.

/**
 * The handling of a flag row, below its link. After an action, the row is drawn again from the
 * flag as the ledger then holds it: `replace(flag)` swaps the row and returns the new one.
 */
export function rowHandling(flag, replace) {
  const bar = actionBar(flag, {
    onSaved: async (answer) => {
      const journey = await waitForAction(answer.customer_id ?? flag.customer_id, flag.flag_id, answer.event_id);
      if (!journey) return false;
      const next = journey.flags.find((f) => f.flag_id === flag.flag_id);
      const row = replace({ ...next, tenant: flag.tenant, customer_id: flag.customer_id });
      afterSaved(row, answer);
      return true;
    },
  });
  return el("div", { class: "flag-row-handling" }, handlingSummary(flag), bar);
}

/** Tell the reader the action is in, and put focus back on the redrawn flag's buttons. */
export function afterSaved(container, answer) {
  const label = ACTION_LABELS[answer.action] ?? humanise(answer.action ?? "");
  const status = container?.querySelector(".action-status");
  if (status) status.textContent = `${label}: saved.`;
  announce(`${label}: saved.`);
  const target = container?.querySelector(".flag-actions button") ?? container?.querySelector("a, button");
  target?.focus();
}
