// Shared pieces of the alert views: labels, badges, the list that upserts live changes.
import { h } from "../dom.js";
import { t } from "../i18n.js";

export function kindLabel(kind) {
  return t(`kind_${kind}`);
}

export function stateBadge(alert) {
  const label =
    alert.state === "resolved" && alert.resolution
      ? `${t("state_resolved")} · ${t(`res_${alert.resolution}`)}`
      : t(`state_${alert.state}`);
  return h(
    "span",
    { class: `badge badge-${alert.state} ${alert.resolution ? `res-${alert.resolution}` : ""}`, "data-testid": "alert-state" },
    label,
  );
}

export function escalatedBadge(alert) {
  return alert.escalated ? h("span", { class: "badge badge-escalated", "data-testid": "alert-escalated" }, t("escalated")) : null;
}

/** Newest first by event time, then by id; at most `max` kept. */
export class AlertList {
  constructor(max = 200) {
    this.max = max;
    this.byId = new Map();
  }
  setAll(alerts) {
    this.byId = new Map(alerts.map((a) => [a.alert_id, a]));
  }
  upsert(alert) {
    const { change, ...rest } = alert;
    this.byId.set(rest.alert_id, rest);
    return change;
  }
  items(filter = () => true) {
    return [...this.byId.values()]
      .filter(filter)
      .sort((a, b) => (b.created_at || "").localeCompare(a.created_at || "") || b.alert_id.localeCompare(a.alert_id))
      .slice(0, this.max);
  }
}
