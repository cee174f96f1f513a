// Operator: the alert queue, ordered by what matters (help and intrusions on top,
// maintenance apart), live from the console-wide feed, with acknowledge/escalate/resolve.
import { api } from "../api.js";
import { feed, isHelp, MAINTENANCE_KINDS, notifyEnabled, queueOrder, setNotify, setSound, soundEnabled } from "../feed.js";
import { fill, fmtAgo, fmtCountdown, fmtTime, h, icon, toast } from "../dom.js";
import { t } from "../i18n.js";
import { escalatedBadge, kindLabel, stateBadge } from "./alertcommon.js";

const KINDS = ["help", "duress", "intrusion", "night_opening", "door_left_open", "tamper", "sensor_offline", "battery_low"];
const STATES = ["open", "acknowledged", "resolved"];

export function mount(host) {
  const alerts = feed();
  const filters = { state: "active", kind: "" };
  let expanded = null; // alert_id whose details are open
  let scheduled = false;

  const root = h("section", { class: "card", "aria-labelledby": "alerts-title", "data-testid": "alerts-view" });
  host.append(root);

  const unsubscribe = alerts.subscribe((what) => {
    if (what === "status") renderLive();
    else if (what === "error") toast(t("err_generic", { detail: "alerts" }), "error");
    else schedule();
  });

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    setTimeout(() => {
      scheduled = false;
      render();
    }, 30);
  }

  // "3분 전" and the escalation countdowns move on by themselves
  const ticker = setInterval(() => {
    const now = Date.now();
    for (const el of root.querySelectorAll("[data-ago]")) el.textContent = fmtAgo(el.dataset.ago, now);
    for (const el of root.querySelectorAll("[data-due]")) {
      const left = Date.parse(el.dataset.due) - now;
      el.textContent = left > 0 ? t("escalates_in", { time: fmtCountdown(left) }) : t("escalation_due");
    }
  }, 1000);

  async function act(alert, action) {
    const path = `/api/v1/alerts/${encodeURIComponent(alert.alert_id)}`;
    try {
      let updated;
      if (action === "ack") updated = await api(`${path}/ack`, { method: "POST" });
      else if (action === "escalate") updated = await api(`${path}/escalate`, { method: "POST" });
      else updated = await api(`${path}/resolve`, { method: "POST", body: { resolution: action } });
      alerts.upsert(updated);
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
      alerts.load();
    }
  }

  function liveBadge() {
    const live = alerts.status;
    const label = live === "live" ? t("live_on") : live === "connecting" ? t("live_connecting") : t("live_off");
    return h("span", { class: `live live-${live}`, "data-testid": "live-status", dataset: { state: live }, role: "status" }, h("span", { class: "dot", "aria-hidden": "true" }), label);
  }

  function renderLive() {
    const shown = root.querySelector("[data-testid=queue-stale]") !== null;
    if (shown !== (alerts.status === "lost")) return render();
    const old = root.querySelector("[data-testid=live-status]");
    if (old) old.replaceWith(liveBadge());
  }

  function select(label, id, value, options, onchange) {
    return h(
      "label",
      { class: "field-inline", for: id },
      h("span", {}, label),
      h(
        "select",
        { id, onchange: (e) => onchange(e.target.value) },
        options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
      ),
    );
  }

  function toggle(id, label, checked, onchange) {
    return h(
      "label",
      { class: "field-inline toggle", for: id },
      h("input", { id, type: "checkbox", checked, "data-testid": id, onchange: (e) => onchange(e.target) }),
      h("span", {}, label),
    );
  }

  function actions(a) {
    if (a.state === "resolved") return h("div", { class: "actions" }, a.resolved_by ? h("span", { class: "muted small" }, a.resolved_by) : null);
    return h(
      "div",
      { class: "actions" },
      a.state === "open" ? h("button", { type: "button", class: "btn", "data-testid": "alert-ack", onclick: () => act(a, "ack") }, t("ack")) : null,
      !a.escalated ? h("button", { type: "button", class: "btn btn-warn", "data-testid": "alert-escalate", onclick: () => act(a, "escalate") }, t("escalate")) : null,
      h("button", { type: "button", class: "btn", "data-testid": "alert-resolve-false", onclick: () => act(a, "false_alarm") }, t("resolve_false")),
      h("button", { type: "button", class: "btn btn-danger", "data-testid": "alert-resolve-confirmed", onclick: () => act(a, "confirmed") }, t("resolve_confirmed")),
    );
  }

  function details(a) {
    const x = alerts.extra(a.alert_id);
    if (!x) return h("div", { class: "details muted" }, t("loading"));
    const { detail, notes, history } = x;
    return h(
      "div",
      { class: "details", "data-testid": "alert-details" },
      h("p", {}, h("strong", {}, `${t("alert_reason")}: `), detail.reason),
      h("h4", {}, t("history")),
      h("ol", { class: "timeline" }, history.map((e) => h("li", {}, `${fmtTime(e.at)} · ${e.action} ${e.from_state ? `${e.from_state}→` : ""}${e.to_state || ""} · ${e.actor || ""}`))),
      h("h4", {}, t("notifications")),
      notes.length
        ? h("ul", { class: "plain" }, notes.map((n) => h("li", { class: n.state === "failed" ? "delivery-failed" : "" }, `${n.recipient} · ${n.state} · ${n.attempts}× · ${fmtTime(n.delivered_at || n.created_at)}${n.last_error ? ` · ${n.last_error}` : ""}`)))
        : h("p", { class: "muted" }, t("none")),
    );
  }

  function escalation(a) {
    if (a.escalated) return escalatedBadge(a);
    if (a.state === "resolved") return null;
    const due = a.escalate_due_at; // shown when the API gives the automatic escalation time
    if (due) {
      const left = Date.parse(due) - Date.now();
      return h("span", { class: "badge badge-countdown", "data-testid": "alert-countdown", dataset: { due } }, left > 0 ? t("escalates_in", { time: fmtCountdown(left) }) : t("escalation_due"));
    }
    return h("span", { class: "badge badge-quiet", "data-testid": "alert-not-escalated" }, t("not_escalated"));
  }

  function answer(x) {
    if (!x) return null;
    if (!x.answer) return h("span", { class: "muted small", "data-testid": "alert-answer", dataset: { answer: "" } }, t("answered_none"));
    return h("span", { class: `small answer-${x.answer}`, "data-testid": "alert-answer", dataset: { answer: x.answer } }, t("answered_yes", { what: t(`answer_${x.answer}`) }));
  }

  function deliveries(x) {
    if (!x) return null;
    if (x.failed) return h("p", { class: "delivery-warning", role: "alert", "data-testid": "delivery-failed" }, icon("warning", 16), t("delivery_failed", { n: x.failed }));
    if (x.retrying) return h("p", { class: "warn small", "data-testid": "delivery-retrying" }, t("delivery_retrying"));
    return null;
  }

  function row(a) {
    const open = expanded === a.alert_id;
    const x = alerts.extra(a.alert_id);
    const help = isHelp(a, x);
    const name = alerts.householdName(a.household_id);
    return h(
      "li",
      {
        class: `alert-row kind-${a.kind} state-${a.state}${help ? " is-help" : ""}${x?.failed ? " has-failed" : ""}`,
        "data-testid": "alert-row",
        dataset: { alertId: a.alert_id, state: a.state, kind: a.kind, help: help ? "true" : "false" },
      },
      h(
        "div",
        { class: "alert-main" },
        help ? h("div", { class: "help-badge", "data-testid": "help-badge" }, icon("bell", 18), t("help_badge")) : null,
        h("div", { class: "alert-kind" }, h("span", { class: `kind-dot kind-${a.kind}`, "aria-hidden": "true" }), kindLabel(a.kind), a.repeats > 1 ? h("span", { class: "muted small" }, ` ×${a.repeats}`) : null),
        h("div", { class: "alert-meta" }, stateBadge(a), escalation(a), MAINTENANCE_KINDS.has(a.kind) ? null : answer(x)),
        h(
          "div",
          { class: "alert-where small" },
          h("strong", { "data-testid": "alert-household", title: t("col_household") }, name || a.household_id),
          name ? h("span", { class: "muted" }, ` ${a.household_id}`) : null,
          " · ",
          h("span", { title: t("col_sensor") }, a.sensor_id || "—"),
        ),
        h("div", { class: "alert-time small" }, h("time", { datetime: a.event_ts, title: fmtTime(a.event_ts), "data-testid": "alert-ago", dataset: { ago: a.event_ts } }, fmtAgo(a.event_ts))),
        deliveries(x),
      ),
      h(
        "div",
        { class: "alert-side" },
        actions(a),
        h(
          "button",
          {
            type: "button",
            class: "btn btn-link",
            "aria-expanded": open ? "true" : "false",
            onclick: () => {
              expanded = open ? null : a.alert_id;
              if (!open) alerts.enqueue(a.alert_id);
              render();
            },
          },
          open ? t("hide") : t("details"),
        ),
      ),
      open ? details(a) : null,
    );
  }

  function render() {
    const filter = (a) =>
      (filters.state === "" || (filters.state === "active" ? a.state !== "resolved" : a.state === filters.state)) &&
      (filters.kind === "" || a.kind === filters.kind);
    const items = alerts.list.items(filter).sort(queueOrder(alerts.extras));
    const urgent = items.filter((a) => !MAINTENANCE_KINDS.has(a.kind));
    const maintenance = items.filter((a) => MAINTENANCE_KINDS.has(a.kind));
    root.dataset.loaded = alerts.loaded ? "true" : "false";
    fill(
      root,
      h("div", { class: "card-head" }, h("h2", { id: "alerts-title" }, t("nav_alerts")), liveBadge()),
      h(
        "div",
        { class: "toolbar" },
        select(t("filter_state"), "alert-filter-state", filters.state, [["active", `${t("state_open")} + ${t("state_acknowledged")}`], ...STATES.map((s) => [s, t(`state_${s}`)]), ["", t("all")]], (v) => {
          filters.state = v;
          render();
        }),
        select(t("filter_kind"), "alert-filter-kind", filters.kind, [["", t("all")], ...KINDS.map((k) => [k, t(`kind_${k}`)])], (v) => {
          filters.kind = v;
          render();
        }),
        h("button", { type: "button", class: "btn", onclick: () => alerts.load() }, t("refresh")),
        toggle("sound-toggle", t("settings_sound"), soundEnabled(), (el) => setSound(el.checked)),
        toggle("notify-toggle", t("settings_notify"), notifyEnabled(), async (el) => {
          if (!(await setNotify(el.checked))) {
            el.checked = false;
            toast(t("notify_denied"), "error");
          }
        }),
      ),
      alerts.status === "lost" ? h("p", { class: "stale-warning", role: "alert", "data-testid": "queue-stale" }, icon("warning", 16), t("queue_stale")) : null,
      !alerts.loaded
        ? h("p", { class: "empty", "data-testid": "alert-queue-loading" }, t("loading"))
        : items.length
          ? null
          : h("p", { class: "empty", "data-testid": "alert-queue-empty" }, t("empty_alerts")),
      urgent.length
        ? [h("h3", { class: "queue-head", id: "queue-urgent" }, t("section_urgent"), ` (${urgent.length})`), h("ul", { class: "alert-list", "data-testid": "alert-queue", "aria-labelledby": "queue-urgent" }, urgent.map(row))]
        : null,
      maintenance.length
        ? [h("h3", { class: "queue-head", id: "queue-maintenance" }, t("section_maintenance"), ` (${maintenance.length})`), h("ul", { class: "alert-list maintenance", "data-testid": "maintenance-queue", "aria-labelledby": "queue-maintenance" }, maintenance.map(row))]
        : null,
    );
  }

  render();
  return {
    destroy() {
      unsubscribe();
      clearInterval(ticker);
    },
    rerender: render,
  };
}
