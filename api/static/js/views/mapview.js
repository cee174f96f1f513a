// Operator: the district map, segments coloured by grade (base or adjusted), click for
// the explanation and the grade history. Segments are fetched by the visible bbox.
import { api, query } from "../api.js";
import { clear, debounce, fill, fmtTime, h, toast } from "../dom.js";
import { t } from "../i18n.js";
import { GRADE_COLOURS, SegmentMap } from "../map.js";

const DISTRICT = [126.86, 37.47, 126.97, 37.56]; // Yeongdeungpo-gu, with a margin

export function mount(host) {
  let selected = null; // props of the selected segment
  let history = null;
  let layer = "grade";
  let fitted = false;
  let fetchSeq = 0;

  const canvas = h("canvas", { class: "map-canvas", tabindex: "0", role: "img", "data-testid": "map-canvas", "aria-label": t("map_canvas") });
  const count = h("span", { class: "muted small", "data-testid": "map-count", role: "status" });
  const panel = h("aside", { class: "map-panel", "data-testid": "segment-panel", "aria-live": "polite" });
  const toolbar = h("div", { class: "toolbar map-toolbar" });
  const legend = h("div", { class: "legend" });
  const root = h(
    "section",
    { class: "card map-card", "aria-labelledby": "map-title" },
    h("div", { class: "card-head" }, h("h2", { id: "map-title" }), count),
    toolbar,
    h("div", { class: "map-layout" }, h("div", { class: "map-wrap" }, canvas, legend), panel),
  );
  host.append(root);

  const map = new SegmentMap(canvas, {
    onSelect: (props) => {
      selected = props;
      history = null;
      renderPanel();
      if (props) loadHistory(props.segment_id);
    },
    onViewChange: debounce((bbox) => load(bbox), 250),
  });
  window.ansimMap = {
    project: (lon, lat) => map.project(lon, lat),
    stats: () => ({ ...map.drawnByGrade }),
    features: () => [...map.features.values()].map((f) => ({ ...f.props, coords: f.coords })),
    layer: () => map.layer,
    focus: (id) => map.focus(id),
    hit: (x, y) => map.hit(x, y),
    drawNow: () => map.drawNow(),
  };

  async function load(bbox) {
    const seq = ++fetchSeq;
    try {
      const fc = await api(`/api/v1/segments${query({ bbox: bbox.map((v) => v.toFixed(6)).join(",") })}`);
      if (seq !== fetchSeq) return;
      map.setFeatures(fc);
      if (!fitted) {
        fitted = true;
        const b = map.dataBounds();
        if (b) map.fit(b);
      }
      renderCount();
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
    }
  }

  async function loadHistory(id) {
    try {
      history = await api(`/api/v1/segments/${encodeURIComponent(id)}/history`);
      if (selected?.segment_id === id) renderPanel();
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
    }
  }

  function renderCount() {
    const n = map.features.size;
    count.textContent = n ? t("map_count", { n: n.toLocaleString() }) : t("map_empty");
    canvas.dataset.loaded = String(n);
  }

  function gradeChip(g) {
    return h("span", { class: "grade-chip", style: `background:${GRADE_COLOURS[g]}` }, String(g));
  }

  function renderPanel() {
    clear(panel);
    if (!selected) {
      panel.append(h("p", { class: "muted" }, t("select_segment")));
      return;
    }
    const p = selected;
    panel.append(
      h("h3", {}, t("segment"), " ", h("code", { "data-testid": "segment-id" }, p.segment_id)),
      h(
        "dl",
        { class: "kv" },
        h("dt", {}, t("dong")),
        h("dd", {}, p.dong || "—"),
        h("dt", {}, t("base_grade")),
        h("dd", { "data-testid": "segment-base-grade" }, gradeChip(p.base_grade)),
        h("dt", {}, t("grade")),
        h("dd", { "data-testid": "segment-grade" }, gradeChip(p.grade)),
        p.incident_count !== null && p.incident_count !== undefined ? [h("dt", {}, "incidents"), h("dd", {}, String(p.incident_count))] : null,
      ),
      h("h4", {}, t("explanation")),
      h("p", { class: "explanation", "data-testid": "segment-explanation" }, p.explanation),
      h("h4", {}, t("seg_history")),
      history === null
        ? h("p", { class: "muted" }, t("loading"))
        : history.data.length === 0
          ? h("p", { class: "muted" }, t("none"))
          : h(
              "ol",
              { class: "timeline", "data-testid": "segment-history" },
              history.data.map((e) => h("li", {}, `${fmtTime(e.at)} · ${e.kind} · ${e.before ?? "—"} → ${e.after}`, e.explanation ? h("div", { class: "small muted" }, e.explanation) : null)),
            ),
    );
  }

  function renderToolbar() {
    const radio = (value, label) =>
      h(
        "label",
        { class: "seg-toggle" },
        h("input", {
          type: "radio",
          name: "grade-layer",
          value,
          checked: layer === value,
          onchange: () => {
            layer = value;
            map.setLayer(value);
          },
        }),
        h("span", {}, label),
      );
    fill(toolbar, 
      h("fieldset", { class: "toggle-group", "data-testid": "grade-layer" }, h("legend", { class: "sr-only" }, t("grade_layer")), radio("base_grade", t("grade_base")), radio("grade", t("grade_adjusted"))),
      h("div", { class: "btn-group" },
        h("button", { type: "button", class: "btn", "aria-label": t("zoom_in"), title: t("zoom_in"), onclick: () => map.zoom(1.6) }, "+"),
        h("button", { type: "button", class: "btn", "aria-label": t("zoom_out"), title: t("zoom_out"), onclick: () => map.zoom(1 / 1.6) }, "−"),
        h("button", { type: "button", class: "btn", onclick: () => { const b = map.dataBounds(); if (b) map.fit(b); } }, t("reset_view")),
      ),
    );
    fill(legend, 
      h("span", { class: "small" }, `${t("legend")}: `),
      [1, 2, 3, 4, 5].map((g) =>
        h(
          "span",
          { class: "legend-item", "data-testid": "legend-item", dataset: { grade: g, colour: GRADE_COLOURS[g] } },
          h("span", { class: "swatch", style: `background:${GRADE_COLOURS[g]}`, "aria-hidden": "true" }, String(g)),
          t("grade_n", { n: g }),
        ),
      ),
      h("span", { class: "small muted" }, ` (1 ${t("safest")} … 5 ${t("least_safe")})`),
    );
  }

  function render() {
    root.querySelector("#map-title").textContent = t("map_title");
    canvas.setAttribute("aria-label", t("map_canvas"));
    renderToolbar();
    renderPanel();
    renderCount();
  }

  render();
  map.resize();
  map.fit(DISTRICT);
  load(DISTRICT);
  return {
    destroy() {
      map.destroy();
      delete window.ansimMap;
    },
    rerender: render,
  };
}
