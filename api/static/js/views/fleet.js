// Operator: the fleet table with filters (status, low battery, tamper, clock skew).
import { api, query } from "../api.js";
import { fill, fmtTime, h, toast } from "../dom.js";
import { t } from "../i18n.js";

export function mount(host) {
  const filters = { status: "", low_battery: false, tamper: false, clock_skewed: false };
  let data = null;
  const root = h("section", { class: "card", "aria-labelledby": "fleet-title" });
  host.append(root);

  let seq = 0;
  async function load() {
    const mine = ++seq;
    try {
      const page = await api(
        `/api/v1/fleet${query({
          status: filters.status,
          low_battery: filters.low_battery ? "true" : "",
          tamper: filters.tamper ? "true" : "",
          clock_skewed: filters.clock_skewed ? "true" : "",
          limit: 1000,
        })}`,
      );
      if (mine !== seq) return; // a newer filter's answer is on its way
      data = page;
      render();
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
    }
  }

  function check(key, label) {
    const id = `fleet-filter-${key}`;
    return h(
      "label",
      { class: "check", for: id },
      h("input", {
        type: "checkbox",
        id,
        checked: filters[key],
        onchange: (e) => {
          filters[key] = e.target.checked;
          load();
        },
      }),
      label,
    );
  }

  function statusCell(s) {
    return h("span", { class: `badge status-${s.status}` }, t(`status_${s.status}`));
  }

  function battery(s) {
    if (s.battery === null || s.battery === undefined) return "—";
    return h(
      "span",
      { class: `battery${s.battery_low ? " low" : ""}` },
      h("meter", { min: 0, max: 100, low: 21, high: 50, optimum: 100, value: s.battery, "aria-label": `${t("battery")} ${s.battery}%` }),
      ` ${s.battery}%`,
    );
  }

  function render() {
    const rows = data?.data ?? [];
    fill(root, 
      h("div", { class: "card-head" }, h("h2", { id: "fleet-title" }, t("nav_fleet")), h("button", { type: "button", class: "btn", onclick: load }, t("refresh"))),
      data ? h("p", { class: "muted", "data-testid": "fleet-summary" }, t("fleet_summary", data.summary)) : null,
      h(
        "div",
        { class: "toolbar" },
        h(
          "label",
          { class: "field-inline", for: "fleet-filter-status" },
          h("span", {}, t("status")),
          h(
            "select",
            {
              id: "fleet-filter-status",
              onchange: (e) => {
                filters.status = e.target.value;
                load();
              },
            },
            ["", "online", "offline", "unknown", "retired"].map((v) => h("option", { value: v, selected: v === filters.status }, v ? t(`status_${v}`) : t("all"))),
          ),
        ),
        check("low_battery", t("low_battery")),
        check("tamper", t("tamper")),
        check("clock_skewed", t("clock_skew")),
      ),
      !data
        ? h("p", { class: "muted" }, t("loading"))
        : rows.length === 0
          ? h("p", { class: "empty", "data-testid": "fleet-empty" }, t("empty_fleet"))
          : h(
              "div",
              { class: "table-wrap" },
              h(
                "table",
                { class: "table", "data-testid": "fleet-table" },
                h("caption", { class: "sr-only" }, t("nav_fleet")),
                h("thead", {}, h("tr", {}, [t("col_sensor"), t("col_household"), t("status"), t("battery"), t("last_seen"), t("tamper"), t("clock_skew")].map((c) => h("th", { scope: "col" }, c)))),
                h(
                  "tbody",
                  {},
                  rows.map((s) =>
                    h(
                      "tr",
                      { "data-testid": "fleet-row", dataset: { sensorId: s.sensor_id, status: s.status } },
                      h("th", { scope: "row" }, h("code", {}, s.sensor_id)),
                      h("td", {}, s.household_name ? `${s.household_name} ` : "", h("span", { class: "muted small" }, s.household_id)),
                      h("td", {}, statusCell(s)),
                      h("td", {}, battery(s)),
                      h("td", {}, fmtTime(s.last_seen)),
                      h("td", {}, s.tamper ? h("span", { class: "badge badge-danger", title: fmtTime(s.last_tamper_at) }, t("yes")) : t("no")),
                      h("td", {}, s.clock_skewed ? h("span", { class: "badge badge-warn" }, `${Math.round(s.clock_skew)} s`) : s.clock_skew !== null && s.clock_skew !== undefined ? `${s.clock_skew.toFixed(1)} s` : "—"),
                    ),
                  ),
                ),
              ),
            ),
    );
  }

  render();
  load();
  const timer = setInterval(load, 15000);
  return { destroy: () => clearInterval(timer), rerender: render };
}
