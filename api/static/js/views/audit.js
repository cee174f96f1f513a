// Operator: the audit log, newest first, filterable, paged by cursor.
import { api, query } from "../api.js";
import { debounce, fill, fmtTime, h, toast } from "../dom.js";
import { t } from "../i18n.js";

export function mount(host) {
  const filters = { action: "", actor: "" };
  let rows = [];
  let next = null;
  const root = h("section", { class: "card", "aria-labelledby": "audit-title" });
  host.append(root);

  async function load(more = false) {
    try {
      const page = await api(`/api/v1/audit${query({ ...filters, limit: 100, cursor: more ? next : "" })}`);
      rows = more ? rows.concat(page.data) : page.data;
      next = page.next_cursor;
      renderTable();
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
    }
  }
  const reload = debounce(() => load(false), 300);

  const tableHost = h("div", {});

  function renderTable() {
    fill(tableHost, 
      rows.length === 0
        ? h("p", { class: "empty" }, t("none"))
        : h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "table", "data-testid": "audit-table" },
              h("caption", { class: "sr-only" }, t("audit_title")),
              h("thead", {}, h("tr", {}, [t("col_at"), t("col_actor"), t("col_action"), t("col_target"), t("col_detail")].map((c) => h("th", { scope: "col" }, c)))),
              h(
                "tbody",
                {},
                rows.map((r) =>
                  h(
                    "tr",
                    { "data-testid": "audit-row", dataset: { action: r.action } },
                    h("td", { class: "nowrap" }, fmtTime(r.at)),
                    h("td", {}, r.actor),
                    h("td", {}, h("code", {}, r.action)),
                    h("td", {}, r.target ? h("code", {}, r.target) : "—"),
                    h("td", { class: "small mono detail" }, Object.keys(r.detail || {}).length ? JSON.stringify(r.detail) : ""),
                  ),
                ),
              ),
            ),
          ),
      next ? h("button", { type: "button", class: "btn", onclick: () => load(true) }, t("more")) : null,
    );
  }

  function input(key, label) {
    const id = `audit-filter-${key}`;
    return h("label", { class: "field-inline", for: id }, h("span", {}, label), h("input", { id, value: filters[key], oninput: (e) => ((filters[key] = e.target.value.trim()), reload()) }));
  }

  function render() {
    fill(root, 
      h("div", { class: "card-head" }, h("h2", { id: "audit-title" }, t("audit_title")), h("button", { type: "button", class: "btn", onclick: () => load(false) }, t("refresh"))),
      h("div", { class: "toolbar" }, input("action", t("filter_action")), input("actor", t("filter_actor"))),
      tableHost,
    );
    renderTable();
  }

  render();
  load();
  return { destroy() {}, rerender: render };
}
