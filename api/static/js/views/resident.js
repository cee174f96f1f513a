// Resident: her home's mode (arm/disarm), her sensor's state and battery, her alerts
// with "it was me" / "help". Built for a phone first.
import { api, streamAlerts } from "../api.js";
import { fill, fmtTime, h, icon, toast } from "../dom.js";
import { t } from "../i18n.js";
import { AlertList, escalatedBadge, kindLabel, stateBadge } from "./alertcommon.js";

const MODES = ["disarmed", "home", "night", "away"];
// "it was me" makes no sense for these (the sensor's own fault or its battery): help only
const NO_IT_WAS_ME = new Set(["tamper", "battery_low"]);

export function mount(host, me) {
  const hid = me.household_id;
  let home = null;
  const alerts = new AlertList(50);
  const answered = new Map(); // alert_id -> "it_was_me" | "help"
  let live = "connecting";
  let busy = false;
  let helpArmed = 0; // the first tap's time: a second tap within 5 s sends it
  let helpSent = false;

  const root = h("div", { class: "resident" });
  fill(host, root);

  async function loadHome() {
    try {
      home = await api(`/api/v1/households/${encodeURIComponent(hid)}`);
      const sensors = await Promise.all(
        home.sensors.map((s) => api(`/api/v1/sensors/${encodeURIComponent(s.sensor_id)}`).catch(() => s)),
      );
      home.sensors = sensors;
      render();
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
    }
  }

  async function loadAlerts() {
    try {
      const page = await api(`/api/v1/alerts?limit=50`);
      const merged = new Map(page.data.map((a) => [a.alert_id, a]));
      for (const [id, a] of alerts.byId) if (!merged.has(id) || (a.updated_at || "") > (merged.get(id).updated_at || "")) merged.set(id, a);
      alerts.setAll([...merged.values()]);
      render();
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
    }
  }

  const stop = streamAlerts({
    onAlert(a) {
      alerts.upsert(a);
      render();
      if (a.kind === "sensor_offline" || a.kind === "battery_low" || a.kind === "tamper") loadHome();
    },
    onStatus(s) {
      live = s;
      render();
    },
    onOpen: loadAlerts,
  });

  async function setMode(mode) {
    if (busy || !home) return;
    busy = true;
    try {
      const r = await api(`/api/v1/households/${encodeURIComponent(hid)}/mode`, { method: "PUT", body: { mode } });
      home.mode = r.mode;
      home.mode_since = r.since;
      home.exit_delay_until = r.exit_delay_until;
      toast(`${t("mode")}: ${t(`mode_${r.mode}`)} — ${t("saved")}`);
      render();
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
    } finally {
      busy = false;
    }
  }

  async function answer(a, value) {
    try {
      const updated = await api(`/api/v1/alerts/${encodeURIComponent(a.alert_id)}/answer`, { method: "POST", body: { answer: value } });
      answered.set(a.alert_id, value);
      alerts.upsert(updated);
      render();
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
    }
  }

  // The help button, always there: the first tap asks to confirm, the second (within 5 s)
  // sends it, so a pocket or a child's tap does not call the centre.
  async function pressHelp() {
    if (Date.now() - helpArmed > 5000) {
      helpArmed = Date.now();
      render();
      setTimeout(render, 5100);
      return;
    }
    helpArmed = 0;
    try {
      const a = await api(`/api/v1/households/${encodeURIComponent(hid)}/help`, { method: "POST" });
      helpSent = true;
      alerts.upsert(a);
      render();
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
      render();
    }
  }

  function helpCard() {
    const open = alerts.items((a) => a.kind === "help" && a.state !== "resolved");
    const sent = helpSent || open.length > 0;
    const seen = open.some((a) => a.state === "acknowledged");
    const confirming = Date.now() - helpArmed <= 5000;
    return h(
      "section",
      { class: "card help-card", "aria-label": t("help_button"), "data-testid": "help-card" },
      h(
        "button",
        {
          type: "button",
          class: "btn btn-big btn-danger help-button",
          "data-testid": "help-button",
          dataset: { confirming: confirming ? "true" : "false" },
          onclick: pressHelp,
        },
        confirming ? t("help_confirm") : t("help_button"),
      ),
      sent
        ? h(
            "div",
            { role: "status", "aria-live": "polite", "data-testid": "help-status" },
            h("p", { class: "answered" }, seen ? t("help_seen") : t("help_sent")),
            h("p", { class: "small" }, t("help_next")),
          )
        : null,
      h("a", { class: "btn btn-big call-112", href: "tel:112", "data-testid": "call-112" }, t("call_112")),
    );
  }

  function modeCard() {
    return h(
      "section",
      { class: "card", "aria-labelledby": "mode-title" },
      h("h2", { id: "mode-title" }, t("mode")),
      h(
        "div",
        { class: "mode-grid", role: "group", "aria-label": t("mode_label"), "data-testid": "mode-buttons" },
        MODES.map((m) =>
          h(
            "button",
            {
              type: "button",
              class: `mode-btn mode-${m}`,
              "aria-pressed": home?.mode === m ? "true" : "false",
              "data-testid": `mode-${m}`,
              disabled: !home,
              onclick: () => setMode(m),
            },
            h("span", { class: "mode-icon" }, icon(m, 26)),
            h("span", {}, t(`mode_${m}`)),
          ),
        ),
      ),
      home ? h("p", { class: "muted small", "data-testid": "current-mode", dataset: { mode: home.mode } }, `${t(`mode_${home.mode}`)} · ${t("mode_since", { time: fmtTime(home.mode_since) })}`) : null,
      exitLeft() > 0 ? h("p", { class: "small exit-delay", role: "timer", "aria-live": "polite", "data-testid": "exit-delay" }, t("exit_delay_left", { s: exitLeft() })) : null,
    );
  }

  // seconds left of the exit delay that arming away/night started (0: none running)
  function exitLeft() {
    const until = home?.exit_delay_until ? Date.parse(home.exit_delay_until) : NaN;
    return Number.isFinite(until) ? Math.max(0, Math.ceil((until - Date.now()) / 1000)) : 0;
  }

  // the countdown: its line's text each second, and a render when it is over
  const countdown = setInterval(() => {
    const line = root.querySelector("[data-testid=exit-delay]");
    if (!line) return;
    const left = exitLeft();
    if (left > 0) line.textContent = t("exit_delay_left", { s: left });
    else render();
  }, 1000);

  function sensorCard() {
    const sensors = home?.sensors ?? [];
    return h(
      "section",
      { class: "card", "aria-labelledby": "sensor-title" },
      h("h2", { id: "sensor-title" }, t("my_sensor")),
      !home
        ? h("p", { class: "muted" }, t("loading"))
        : sensors.length === 0
          ? h("p", { class: "muted" }, t("no_sensors"))
          : h(
              "ul",
              { class: "sensor-list" },
              sensors.map((s) =>
                h(
                  "li",
                  { class: "sensor", "data-testid": "my-sensor", dataset: { sensorId: s.sensor_id, status: s.status } },
                  h("div", { class: "sensor-head" }, h("strong", {}, t("door_sensor")), h("span", { class: `badge status-${s.status}`, "data-testid": "sensor-status" }, t(`status_${s.status}`))),
                  h(
                    "div",
                    { class: "battery-row" },
                    h("span", {}, t("battery")),
                    s.battery === null || s.battery === undefined
                      ? h("span", { "data-testid": "sensor-battery" }, "—")
                      : [
                          h("meter", { min: 0, max: 100, low: 21, high: 50, optimum: 100, value: s.battery, "aria-label": `${t("battery")} ${s.battery}%` }),
                          h("span", { "data-testid": "sensor-battery" }, `${s.battery}%`),
                        ],
                  ),
                  h("div", { class: "muted small" }, `${t("last_seen")}: ${fmtTime(s.last_seen)}`),
                ),
              ),
            ),
    );
  }

  function alertItem(a) {
    // once she asked for help it stays with the control centre: no more answers of hers
    const mine = a.help_requested ? "help" : answered.get(a.alert_id);
    const canAnswer = a.state !== "resolved" && !a.help_requested;
    return h(
      "li",
      { class: `my-alert kind-${a.kind} state-${a.state}`, "data-testid": "my-alert", dataset: { alertId: a.alert_id, state: a.state, kind: a.kind } },
      h("div", { class: "alert-kind" }, h("span", { class: `kind-dot kind-${a.kind}`, "aria-hidden": "true" }), kindLabel(a.kind)),
      h("div", { class: "alert-meta" }, stateBadge(a), escalatedBadge(a)),
      h("div", { class: "small muted" }, h("time", { datetime: a.event_ts }, fmtTime(a.event_ts))),
      mine ? h("p", { class: "answered", role: "status" }, mine === "help" ? t("answered_help") : t("answered_me")) : null,
      canAnswer
        ? h(
            "div",
            { class: "answer-row" },
            NO_IT_WAS_ME.has(a.kind) ? null : h("button", { type: "button", class: "btn btn-big", "data-testid": "answer-it-was-me", onclick: () => answer(a, "it_was_me") }, t("it_was_me")),
            h("button", { type: "button", class: "btn btn-big btn-danger", "data-testid": "answer-help", onclick: () => answer(a, "help") }, t("help")),
          )
        : null,
    );
  }

  function alertsCard() {
    const items = alerts.items();
    const label = live === "live" ? t("live_on") : live === "connecting" ? t("live_connecting") : t("live_off");
    return h(
      "section",
      { class: "card", "aria-labelledby": "my-alerts-title" },
      h("div", { class: "card-head" }, h("h2", { id: "my-alerts-title" }, t("my_alerts")), h("span", { class: `live live-${live}`, "data-testid": "live-status", dataset: { state: live } }, h("span", { class: "dot", "aria-hidden": "true" }), label)),
      items.length ? h("ul", { class: "my-alerts", "data-testid": "my-alerts" }, items.map(alertItem)) : h("p", { class: "empty" }, t("empty_my_alerts")),
    );
  }

  function render() {
    fill(root, 
      h("h1", { class: "home-title" }, home?.name ? `${t("my_home")} · ${home.name}` : t("my_home")),
      helpCard(),
      alerts.items((a) => a.state !== "resolved").length ? alertsCard() : null,
      modeCard(),
      sensorCard(),
      alerts.items((a) => a.state !== "resolved").length ? null : alertsCard(),
    );
  }

  render();
  loadHome();
  const timer = setInterval(loadHome, 30000);
  return {
    destroy() {
      stop();
      clearInterval(timer);
      clearInterval(countdown);
    },
    rerender: render,
  };
}
