// A hand-written canvas map of GeoJSON LineStrings: no tiles, no library.
// Equirectangular projection around the view centre (fine at district scale).

// A diverging blue → grey → amber → dark red scale that stays apart for protan, deutan and
// tritan vision (CIELAB ΔE ≥ 29 between any two grades, simulated) and has a contrast of at
// least 3.3:1 against the map background #f4f1ea for every grade (WCAG non-text contrast).
export const GRADE_COLOURS = {
  1: "#1f3a93",
  2: "#2f8ac4",
  3: "#857f70",
  4: "#b87400",
  5: "#8a0010",
};
export const MAP_BACKGROUND = "#f4f1ea";

const MIN_K = 200; // px per degree of latitude (~ whole Seoul)
const MAX_K = 5_000_000; // ~ 45 px per metre

export class SegmentMap {
  constructor(canvas, { onSelect, onViewChange }) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onSelect = onSelect;
    this.onViewChange = onViewChange;
    this.features = new Map(); // segment_id -> {coords, props}
    this.layer = "grade"; // or "base_grade"
    this.selected = null;
    this.view = { lon: 126.914, lat: 37.512, k: 12000 };
    this.drawnByGrade = { 1: 0, 2: 0, 3: 0, 4: 0, 5: 0 };
    this.width = 0;
    this.height = 0;
    this._frame = 0;
    this._bind();
    this.resize();
  }

  // ---------------------------------------------------------------- projection
  project(lon, lat) {
    const { k } = this.view;
    const c = Math.cos((this.view.lat * Math.PI) / 180);
    return [(lon - this.view.lon) * k * c + this.width / 2, (this.view.lat - lat) * k + this.height / 2];
  }

  unproject(x, y) {
    const { k } = this.view;
    const c = Math.cos((this.view.lat * Math.PI) / 180);
    return [(x - this.width / 2) / (k * c) + this.view.lon, this.view.lat - (y - this.height / 2) / k];
  }

  bbox(margin = 0.15) {
    const [minLon, maxLat] = this.unproject(-this.width * margin, -this.height * margin);
    const [maxLon, minLat] = this.unproject(this.width * (1 + margin), this.height * (1 + margin));
    return [minLon, minLat, maxLon, maxLat];
  }

  fit([minLon, minLat, maxLon, maxLat]) {
    if (!(maxLon > minLon && maxLat > minLat) || !this.width) return;
    const lat = (minLat + maxLat) / 2;
    const c = Math.cos((lat * Math.PI) / 180);
    const k = Math.min((this.width * 0.92) / ((maxLon - minLon) * c), (this.height * 0.92) / (maxLat - minLat));
    this.view = { lon: (minLon + maxLon) / 2, lat, k: clamp(k, MIN_K, MAX_K) };
    this.changed();
  }

  /** Centre on one segment, close enough to see it as a street piece. */
  focus(id, pxPerMetre = 10) {
    const f = this.features.get(id);
    if (!f) return false;
    const n = f.coords.length;
    const a = f.coords[Math.floor((n - 1) / 2)];
    const b = f.coords[Math.floor(n / 2)];
    this.view = { lon: (a[0] + b[0]) / 2, lat: (a[1] + b[1]) / 2, k: clamp(pxPerMetre * 111_320, MIN_K, MAX_K) };
    this.changed();
    return true;
  }

  dataBounds() {
    let b = [Infinity, Infinity, -Infinity, -Infinity];
    for (const f of this.features.values()) {
      for (const [x, y] of f.coords) b = [Math.min(b[0], x), Math.min(b[1], y), Math.max(b[2], x), Math.max(b[3], y)];
    }
    return Number.isFinite(b[0]) ? b : null;
  }

  // ---------------------------------------------------------------- data
  setFeatures(geojson, { replace = false } = {}) {
    if (replace) this.features.clear();
    for (const f of geojson.features || []) {
      if (f.geometry?.type !== "LineString") continue;
      this.features.set(f.properties.segment_id, { coords: f.geometry.coordinates, props: f.properties });
    }
    if (this.selected && !this.features.has(this.selected)) this.selected = null;
    this.draw();
  }

  setLayer(layer) {
    this.layer = layer;
    this.draw();
  }

  select(id) {
    this.selected = id;
    this.draw();
  }

  // ---------------------------------------------------------------- drawing
  resize() {
    const rect = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    this.width = Math.max(1, rect.width);
    this.height = Math.max(1, rect.height);
    this.canvas.width = Math.round(this.width * dpr);
    this.canvas.height = Math.round(this.height * dpr);
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.draw();
  }

  draw() {
    cancelAnimationFrame(this._frame);
    this._frame = requestAnimationFrame(() => this._draw());
  }

  drawNow() {
    cancelAnimationFrame(this._frame);
    this._draw();
  }

  _draw() {
    const { ctx, width, height } = this;
    ctx.clearRect(0, 0, width, height);
    ctx.fillStyle = MAP_BACKGROUND;
    ctx.fillRect(0, 0, width, height);
    const pxPerMetre = this.view.k / 111_320;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = clamp(pxPerMetre * 3, 3, 12);
    const paths = { 1: new Path2D(), 2: new Path2D(), 3: new Path2D(), 4: new Path2D(), 5: new Path2D() };
    const counts = { 1: 0, 2: 0, 3: 0, 4: 0, 5: 0 };
    const pad = 20;
    for (const f of this.features.values()) {
      const g = clamp(Math.round(f.props[this.layer] ?? f.props.base_grade), 1, 5);
      const pts = f.coords.map(([x, y]) => this.project(x, y));
      if (pts.every(([x]) => x < -pad) || pts.every(([x]) => x > width + pad)) continue;
      if (pts.every(([, y]) => y < -pad) || pts.every(([, y]) => y > height + pad)) continue;
      const p = paths[g];
      p.moveTo(pts[0][0], pts[0][1]);
      for (let i = 1; i < pts.length; i++) p.lineTo(pts[i][0], pts[i][1]);
      if (pts.length === 1) p.lineTo(pts[0][0] + 0.01, pts[0][1]);
      counts[g]++;
    }
    for (const g of [1, 2, 3, 4, 5]) {
      ctx.strokeStyle = GRADE_COLOURS[g];
      ctx.stroke(paths[g]);
    }
    this.drawnByGrade = counts;
    const sel = this.selected && this.features.get(this.selected);
    if (sel) {
      const pts = sel.coords.map(([x, y]) => this.project(x, y));
      const path = new Path2D();
      path.moveTo(pts[0][0], pts[0][1]);
      for (const [x, y] of pts.slice(1)) path.lineTo(x, y);
      const w = ctx.lineWidth;
      ctx.strokeStyle = "#111";
      ctx.lineWidth = w + 6;
      ctx.stroke(path);
      ctx.strokeStyle = GRADE_COLOURS[clamp(sel.props[this.layer] ?? sel.props.base_grade, 1, 5)];
      ctx.lineWidth = w + 1;
      ctx.stroke(path);
      const [ax, ay] = pts[Math.floor((pts.length - 1) / 2)];
      const [bx, by] = pts[Math.floor(pts.length / 2)];
      const [mx, my] = [(ax + bx) / 2, (ay + by) / 2];
      ctx.beginPath();
      ctx.arc(mx, my, w + 9, 0, Math.PI * 2);
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 2;
      ctx.stroke();
      ctx.lineWidth = w;
    }
    this._drawScale(pxPerMetre);
    this.canvas.dataset.drawn = String(Object.values(counts).reduce((a, b) => a + b, 0));
  }

  _drawScale(pxPerMetre) {
    const { ctx } = this;
    const target = 120 / pxPerMetre;
    const nice = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000].find((m) => m >= target * 0.5) || 10000;
    const px = nice * pxPerMetre;
    const x = 12;
    const y = this.height - 14;
    ctx.fillStyle = "rgba(255,255,255,.8)";
    ctx.fillRect(x - 4, y - 16, px + 60, 24);
    ctx.strokeStyle = "#333";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(x, y - 4);
    ctx.lineTo(x, y);
    ctx.lineTo(x + px, y);
    ctx.lineTo(x + px, y - 4);
    ctx.stroke();
    ctx.fillStyle = "#333";
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillText(nice >= 1000 ? `${nice / 1000} km` : `${nice} m`, x + px + 6, y);
  }

  // ---------------------------------------------------------------- interaction
  zoom(factor, x = this.width / 2, y = this.height / 2) {
    const [lon, lat] = this.unproject(x, y);
    const k = clamp(this.view.k * factor, MIN_K, MAX_K);
    this.view.k = k;
    // keep (lon, lat) under the cursor
    const [nx, ny] = this.project(lon, lat);
    const c = Math.cos((this.view.lat * Math.PI) / 180);
    this.view.lon += (nx - x) / (k * c);
    this.view.lat -= (ny - y) / k;
    this.changed();
  }

  pan(dx, dy) {
    const c = Math.cos((this.view.lat * Math.PI) / 180);
    this.view.lon -= dx / (this.view.k * c);
    this.view.lat += dy / this.view.k;
    this.changed();
  }

  changed() {
    this.draw();
    this.onViewChange?.(this.bbox());
  }

  hit(x, y, tolerance = 10) {
    let best = null;
    let bestD = tolerance;
    for (const [id, f] of this.features) {
      const pts = f.coords.map(([a, b]) => this.project(a, b));
      for (let i = 0; i < pts.length; i++) {
        const d = i === 0 ? Math.hypot(pts[0][0] - x, pts[0][1] - y) : segDist(x, y, pts[i - 1], pts[i]);
        if (d < bestD) {
          bestD = d;
          best = id;
        }
      }
    }
    return best;
  }

  _bind() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, moved: 0, id: e.pointerId };
      c.setPointerCapture(e.pointerId);
    });
    c.addEventListener("pointermove", (e) => {
      if (!drag || drag.id !== e.pointerId) return;
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      drag.moved += Math.abs(dx) + Math.abs(dy);
      drag.x = e.clientX;
      drag.y = e.clientY;
      if (drag.moved > 4) this.pan(dx, dy);
    });
    c.addEventListener("pointerup", (e) => {
      if (!drag) return;
      const moved = drag.moved;
      drag = null;
      if (moved <= 4) {
        const r = c.getBoundingClientRect();
        const id = this.hit(e.clientX - r.left, e.clientY - r.top);
        this.select(id);
        this.onSelect?.(id ? this.features.get(id).props : null);
      }
    });
    c.addEventListener("pointercancel", () => (drag = null));
    c.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        const r = c.getBoundingClientRect();
        this.zoom(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
      },
      { passive: false },
    );
    c.addEventListener("keydown", (e) => {
      const step = 60;
      const keys = {
        ArrowLeft: () => this.pan(step, 0),
        ArrowRight: () => this.pan(-step, 0),
        ArrowUp: () => this.pan(0, step),
        ArrowDown: () => this.pan(0, -step),
        "+": () => this.zoom(1.5),
        "=": () => this.zoom(1.5),
        "-": () => this.zoom(1 / 1.5),
      };
      if (keys[e.key]) {
        e.preventDefault();
        keys[e.key]();
      }
    });
    this._resizeObserver = new ResizeObserver(() => this.resize());
    this._resizeObserver.observe(c);
  }

  destroy() {
    this._resizeObserver?.disconnect();
    cancelAnimationFrame(this._frame);
  }
}

function clamp(v, lo, hi) {
  return Math.max(lo, Math.min(hi, v));
}

function segDist(px, py, [ax, ay], [bx, by]) {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const u = len2 ? clamp(((px - ax) * dx + (py - ay) * dy) / len2, 0, 1) : 0;
  return Math.hypot(ax + u * dx - px, ay + u * dy - py);
}
