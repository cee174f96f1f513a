// Operator: the alert queue, live over the SSE stream, with acknowledge/escalate/resolve.
import { api, query, streamAlerts } from "../api.js";
import { fill, fmtTime, h, toast } from "../dom.js";
import { t } from "../i18n.js";
import { AlertList, escalatedBadge, kindLabel, stateBadge } from "./alertcommon.js";

const KINDS = ["intrusion", "night_opening", "door_left_open", "tamper", "sensor_offline", "battery_low"];
const STATES = ["open", "acknowledged", "resolved"];

export function mount(host) {
  const list = new AlertList(300);
  const filters = { state: "active", kind: "" };
  let live = "connecting";
  let expanded = null; // alert_id whose details are open
  let detailCache = new Map();
  const flash = new Set();

  const root = h("section", { class: "card", "aria-labelledby": "alerts-title" });
  host.append(root);

  async function load() {
    try {
      const page = await api(`/api/v1/alerts${query({ limit: 200, kind: filters.kind })}`);
      // stream changes that arrived meanwhile win over the page (they are newer)
      const merged = new Map(page.data.map((a) => [a.alert_id, a]));
      for (const [id, a] of list.byId) if (!merged.has(id) || (a.updated_at || "") > (merged.get(id).updated_at || "")) merged.set(id, a);
      list.setAll([...merged.values()]);
      render();
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
    }
  }

  const stop = streamAlerts({
    onAlert(alert) {
      list.upsert(alert);
      flash.add(alert.alert_id);
      detailCache.delete(alert.alert_id);
      render();
      if (expanded === alert.alert_id) loadDetails(alert.alert_id);
    },
    onStatus(s) {
      live = s;
      renderLive();
    },
    onOpen: load,
  });

  async function act(alert, action) {
    const path = `/api/v1/alerts/${encodeURIComponent(alert.alert_id)}`;
    try {
      let updated;
      if (action === "ack") updated = await api(`${path}/ack`, { method: "POST" });
      else if (action === "escalate") updated = await api(`${path}/escalate`, { method: "POST" });
      else updated = await api(`${path}/resolve`, { method: "POST", body: { resolution: action } });
      list.upsert(updated);
      detailCache.delete(alert.alert_id);
      render();
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
      load();
    }
  }

  async function loadDetails(id) {
    try {
      const [detail, notes] = await Promise.all([
        api(`/api/v1/alerts/${encodeURIComponent(id)}`),
        api(`/api/v1/alerts/${encodeURIComponent(id)}/notifications`),
      ]);
      detailCache.set(id, { detail, notes: notes.data });
      render();
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
    }
  }

  function liveBadge() {
    const label = live === "live" ? t("live_on") : live === "connecting" ? t("live_connecting") : t("live_off");
    return h("span", { class: `live live-${live}`, "data-testid": "live-status", dataset: { state: live }, role: "status" }, h("span", { class: "dot", "aria-hidden": "true" }), label);
  }

  function renderLive() {
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
    const cached = detailCache.get(a.alert_id);
    if (!cached) return h("div", { class: "details muted" }, t("loading"));
    const { detail, notes } = cached;
    return h(
      "div",
      { class: "details", "data-testid": "alert-details" },
      h("p", {}, h("strong", {}, `${t("alert_reason")}: `), detail.reason),
      h("h4", {}, t("history")),
      h("ol", { class: "timeline" }, (detail.history || []).map((x) => h("li", {}, `${fmtTime(x.at)} · ${x.action} ${x.from_state ? `${x.from_state}→` : ""}${x.to_state || ""} · ${x.actor || ""}`))),
      h("h4", {}, t("notifications")),
      notes.length
        ? h("ul", { class: "plain" }, notes.map((n) => h("li", {}, `${n.recipient} · ${n.state} · ${n.attempts}× · ${fmtTime(n.delivered_at || n.created_at)}${n.last_error ? ` · ${n.last_error}` : ""}`)))
        : h("p", { class: "muted" }, t("none")),
    );
  }

  function row(a) {
    const open = expanded === a.alert_id;
    return h(
      "li",
      { class: `alert-row kind-${a.kind} state-${a.state}${flash.has(a.alert_id) ? " flash" : ""}`, "data-testid": "alert-row", dataset: { alertId: a.alert_id, state: a.state, kind: a.kind } },
      h(
        "div",
        { class: "alert-main" },
        h("div", { class: "alert-kind" }, h("span", { class: `kind-dot kind-${a.kind}`, "aria-hidden": "true" }), kindLabel(a.kind), a.repeats > 1 ? h("span", { class: "muted small" }, ` ×${a.repeats}`) : null),
        h("div", { class: "alert-meta" }, stateBadge(a), escalatedBadge(a)),
        h("div", { class: "alert-where small" }, h("span", { title: t("col_household") }, a.household_id), " · ", h("span", { title: t("col_sensor") }, a.sensor_id || "—")),
        h("div", { class: "alert-time small" }, h("time", { datetime: a.event_ts }, fmtTime(a.event_ts))),
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
              if (!open) loadDetails(a.alert_id);
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
    const items = list.items(filter);
    fill(root, 
      h(
        "div",
        { class: "card-head" },
        h("h2", { id: "alerts-title" }, t("nav_alerts")),
        liveBadge(),
      ),
      h(
        "div",
        { class: "toolbar" },
        select(t("filter_state"), "alert-filter-state", filters.state, [["active", `${t("state_open")} + ${t("state_acknowledged")}`], ...STATES.map((s) => [s, t(`state_${s}`)]), ["", t("all")]], (v) => {
          filters.state = v;
          render();
        }),
        select(t("filter_kind"), "alert-filter-kind", filters.kind, [["", t("all")], ...KINDS.map((k) => [k, t(`kind_${k}`)])], (v) => {
          filters.kind = v;
          load();
        }),
        h("button", { type: "button", class: "btn", onclick: load }, t("refresh")),
      ),
      items.length
        ? h("ul", { class: "alert-list", "data-testid": "alert-queue", "aria-label": t("nav_alerts") }, items.map(row))
        : h("p", { class: "empty", "data-testid": "alert-queue-empty" }, t("empty_alerts")),
    );
    setTimeout(() => flash.clear(), 0);
  }

  render();
  return { destroy: stop, rerender: render };
}
