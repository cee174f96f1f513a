// Operator: enrol a household and provision sensors; secrets are shown once, then dropped.
import { api } from "../api.js";
import { fill, h, toast } from "../dom.js";
import { t } from "../i18n.js";

export function mount(host) {
  const form = { name: "", lat: "37.5172", lon: "126.9072", timezone: "Asia/Seoul", night_window: "23:00-06:00", webhook_url: "" };
  const sensorForm = { household_id: "", sensor_id: "" };
  let household = null; // the enrolment answer, secrets included, until hidden
  let sensor = null;
  let busy = false;
  const root = h("div", { class: "grid-2" });
  host.append(root);

  function field(obj, key, label, attrs = {}) {
    const id = `enrol-${key}`;
    return h(
      "div",
      { class: "field" },
      h("label", { for: id }, label),
      h("input", { id, name: key, value: obj[key], oninput: (e) => (obj[key] = e.target.value), ...attrs }),
    );
  }

  function secretRow(label, value, testid) {
    if (value === null || value === undefined) return null;
    return h(
      "div",
      { class: "secret-row" },
      h("dt", {}, label),
      h(
        "dd",
        {},
        h("code", { "data-testid": testid }, String(value)),
        h(
          "button",
          {
            type: "button",
            class: "btn btn-small",
            "aria-label": `${t("copy")}: ${label}`,
            onclick: async (e) => {
              try {
                await navigator.clipboard.writeText(String(value));
                e.target.textContent = t("copied");
              } catch {
                /* clipboard may be unavailable over plain http */
              }
            },
          },
          t("copy"),
        ),
      ),
    );
  }

  async function enrol(ev) {
    ev.preventDefault();
    if (busy) return;
    busy = true;
    const body = { name: form.name.trim(), lat: Number(form.lat), lon: Number(form.lon), timezone: form.timezone.trim(), night_window: form.night_window.trim() };
    if (form.webhook_url.trim()) body.webhook_url = form.webhook_url.trim();
    try {
      household = await api("/api/v1/households", { method: "POST", body });
      sensorForm.household_id = household.household_id;
      sensor = null;
      form.name = "";
      render();
      root.querySelector("[data-testid=household-secrets]")?.focus();
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
    } finally {
      busy = false;
    }
  }

  async function provision(ev) {
    ev.preventDefault();
    if (busy) return;
    busy = true;
    const id = sensorForm.household_id.trim();
    const body = sensorForm.sensor_id.trim() ? { sensor_id: sensorForm.sensor_id.trim() } : {};
    try {
      sensor = await api(`/api/v1/households/${encodeURIComponent(id)}/sensors`, { method: "POST", body });
      sensorForm.sensor_id = "";
      render();
      root.querySelector("[data-testid=sensor-secrets]")?.focus();
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
    } finally {
      busy = false;
    }
  }

  function render() {
    fill(root, 
      h(
        "section",
        { class: "card", "aria-labelledby": "enrol-title" },
        h("h2", { id: "enrol-title" }, t("enrol_household")),
        h(
          "form",
          { onsubmit: enrol, "data-testid": "enrol-form" },
          field(form, "name", t("hh_name"), { required: true, maxlength: 200, autocomplete: "off" }),
          h("div", { class: "row-2" }, field(form, "lat", t("lat"), { inputmode: "decimal", required: true }), field(form, "lon", t("lon"), { inputmode: "decimal", required: true })),
          h("div", { class: "row-2" }, field(form, "timezone", t("timezone")), field(form, "night_window", t("night_window"), { pattern: "\\d{2}:\\d{2}-\\d{2}:\\d{2}" })),
          field(form, "webhook_url", t("webhook_url"), { type: "url", autocomplete: "off" }),
          h("button", { type: "submit", class: "btn btn-primary" }, t("enrol")),
        ),
        household
          ? h(
              "div",
              { class: "once", "data-testid": "household-secrets", tabindex: "-1", role: "region", "aria-label": t("enrolled") },
              h("h3", {}, t("enrolled")),
              h("p", { class: "warn" }, t("once_warning")),
              h(
                "dl",
                {},
                secretRow(t("household_id"), household.household_id, "enrolled-household-id"),
                secretRow(t("segment_id"), household.segment_id ?? t("none"), "enrolled-segment-id"),
                secretRow(t("resident_token"), household.token, "resident-token"),
                secretRow(t("webhook_secret"), household.webhook_secret, "webhook-secret"),
              ),
              h("button", { type: "button", class: "btn", onclick: () => ((household = null), render()) }, t("done_hide")),
            )
          : null,
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "provision-title" },
        h("h2", { id: "provision-title" }, t("provision_sensor")),
        h(
          "form",
          { onsubmit: provision, "data-testid": "provision-form" },
          field(sensorForm, "household_id", t("household_id"), { required: true, autocomplete: "off" }),
          field(sensorForm, "sensor_id", t("sensor_id_opt"), { pattern: "[a-z0-9][a-z0-9\\-]{2,63}", autocomplete: "off" }),
          h("button", { type: "submit", class: "btn btn-primary" }, t("provision")),
        ),
        sensor
          ? h(
              "div",
              { class: "once", "data-testid": "sensor-secrets", tabindex: "-1", role: "region", "aria-label": t("provisioned") },
              h("h3", {}, t("provisioned")),
              h("p", { class: "warn" }, t("once_warning")),
              h(
                "dl",
                {},
                secretRow(t("col_sensor"), sensor.sensor_id, "provisioned-sensor-id"),
                secretRow(t("mqtt_host"), sensor.mqtt.host, "mqtt-host"),
                secretRow(t("mqtt_port"), sensor.mqtt.port, "mqtt-port"),
                secretRow(t("mqtt_tls"), sensor.mqtt.server_name, "mqtt-server-name"),
                secretRow(t("mqtt_username"), sensor.mqtt.username, "mqtt-username"),
                secretRow(t("mqtt_password"), sensor.mqtt.password, "mqtt-password"),
                secretRow(t("event_topic"), sensor.mqtt.event_topic, "mqtt-topic"),
              ),
              sensor.mqtt.ca_pem
                ? h(
                    "details",
                    {},
                    h("summary", {}, t("mqtt_ca")),
                    h("pre", { class: "mono", "data-testid": "mqtt-ca" }, sensor.mqtt.ca_pem),
                  )
                : null,
              h("button", { type: "button", class: "btn", onclick: () => ((sensor = null), render()) }, t("done_hide")),
            )
          : null,
      ),
    );
  }

  render();
  return { destroy() {}, rerender: render };
}
