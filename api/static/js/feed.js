// The operator's alert feed, for the whole console (not one view): the live stream, the
// open alerts, what each one's story says (a help request, the resident's answer, failed
// deliveries), household names, and the attention it asks for (tab title, sound,
// desktop notification) so a help request is heard on the map page too.
import { api, query, streamAlerts } from "./api.js";
import { onLangChange, t } from "./i18n.js";
import { AlertList } from "./views/alertcommon.js";

// Queue order: help and duress (a silent disarm under threat) first, then intrusion, night
// openings, tamper, offline.
const RANK = { help: 0, duress: 0, intrusion: 1, night_opening: 2, door_left_open: 3, tamper: 4, sensor_offline: 5 };
// A person may be in danger: these beep, notify and count in the tab title.
export const URGENT_KINDS = new Set(["help", "duress", "intrusion", "night_opening", "door_left_open", "tamper"]);
export const MAINTENANCE_KINDS = new Set(["battery_low"]);

const SOUND_KEY = "ansim.sound";
const NOTIFY_KEY = "ansim.notify";

export function isHelp(alert, extra) {
  return alert.kind === "help" || Boolean(alert.help_requested) || Boolean(extra?.help);
}

export function isUrgent(alert, extra) {
  return isHelp(alert, extra) || URGENT_KINDS.has(alert.kind);
}

function rankOf(alert, extra) {
  if (isHelp(alert, extra)) return 0;
  return RANK[alert.kind] ?? 6;
}

/** Resolved last; then by rank; open before acknowledged; newest first. */
export function queueOrder(extras) {
  return (a, b) => {
    const ea = extras.get(a.alert_id);
    const eb = extras.get(b.alert_id);
    return (
      (a.state === "resolved") - (b.state === "resolved") ||
      rankOf(a, ea) - rankOf(b, eb) ||
      (a.state === "acknowledged") - (b.state === "acknowledged") ||
      (b.created_at || "").localeCompare(a.created_at || "") ||
      b.alert_id.localeCompare(a.alert_id)
    );
  };
}

/** What the story of an alert says: a help request, the resident's answer, deliveries. */
function summarise(detail, notes) {
  const history = detail.history || [];
  const byResident = history.filter((x) => (x.actor || "").startsWith("resident:"));
  const help = byResident.some((x) => x.action === "escalate");
  const itWasMe = byResident.some((x) => x.action === "resolve");
  const failed = notes.filter((n) => n.state === "failed").length;
  const pending = notes.filter((n) => n.state === "pending");
  return {
    help,
    answer: help ? "help" : itWasMe ? "it_was_me" : null,
    failed,
    retrying: pending.some((n) => n.attempts > 0 || n.last_error),
    pending: pending.length,
    history,
    notes,
    detail,
  };
}

// --- attention: a WebAudio beep, a desktop notification -------------------------------
let audio = null;

export function soundEnabled() {
  return localStorage.getItem(SOUND_KEY) === "on";
}

export function notifyEnabled() {
  return localStorage.getItem(NOTIFY_KEY) === "on";
}

/** Called from the toggle's click (a user gesture: browsers only allow audio after one). */
export function setSound(on) {
  localStorage.setItem(SOUND_KEY, on ? "on" : "off");
  if (on) {
    audio = audio || new AudioContext();
    audio.resume?.();
    beep();
  }
}

export async function setNotify(on) {
  if (on && "Notification" in window && Notification.permission === "default") {
    await Notification.requestPermission();
  }
  const allowed = "Notification" in window && Notification.permission === "granted";
  localStorage.setItem(NOTIFY_KEY, on && allowed ? "on" : "off");
  return !on || allowed;
}

export const attention = { beeps: 0, notifications: 0 }; // counted, for tests and support

function beep() {
  if (!audio) {
    try {
      audio = new AudioContext();
    } catch {
      return;
    }
  }
  attention.beeps += 1;
  const now = audio.currentTime;
  for (const [i, freq] of [880, 660, 880].entries()) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "square";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, now + i * 0.22);
    gain.gain.exponentialRampToValueAtTime(0.2, now + i * 0.22 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.22 + 0.2);
    osc.connect(gain).connect(audio.destination);
    osc.start(now + i * 0.22);
    osc.stop(now + i * 0.22 + 0.21);
  }
}

export class AlertFeed {
  constructor() {
    this.list = new AlertList(2000);
    this.extras = new Map(); // alert_id -> summarise(...) + key/checked
    this.households = new Map(); // household_id -> name | null (null: asked, none)
    this.status = "connecting";
    this.listeners = new Set();
    this.announced = new Set();
    this.loaded = false;
    this.queue = [];
    this.running = 0;
    this.stopStream = streamAlerts({
      onAlert: (alert) => this.onAlert(alert),
      onStatus: (s) => {
        this.status = s;
        this.emit("status");
      },
      onOpen: () => this.load(),
    });
    this.timer = setInterval(() => this.recheck(), 2000);
    this.offLang = onLangChange(() => this.updateTitle());
  }

  stop() {
    this.stopStream();
    clearInterval(this.timer);
    this.offLang();
    document.title = t("app_title");
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(what) {
    if (what !== "status") this.updateTitle();
    for (const fn of this.listeners) fn(what);
  }

  /** Open and acknowledged alerts (all of them), and the newest ones of any state. */
  async load() {
    try {
      const pages = await Promise.all([
        api(`/api/v1/alerts${query({ state: "open", limit: 1000 })}`),
        api(`/api/v1/alerts${query({ state: "acknowledged", limit: 1000 })}`),
        api(`/api/v1/alerts${query({ limit: 200 })}`),
      ]);
      const merged = new Map();
      for (const page of pages) for (const a of page.data) merged.set(a.alert_id, a);
      // stream changes that arrived meanwhile win over the pages (they are newer)
      for (const [id, a] of this.list.byId) {
        if (!merged.has(id) || (a.updated_at || "") > (merged.get(id).updated_at || "")) merged.set(id, a);
      }
      this.list.setAll([...merged.values()]);
      // what is already there at sign-in is not news: no beep for it, nor for a help request
      // its story turns out to hold once fetched
      if (!this.loaded) for (const id of merged.keys()) this.announced.add(id).add(`${id}:help`);
      this.loaded = true;
      for (const a of merged.values()) this.want(a);
      this.emit("load");
    } catch (err) {
      this.emit("error", err);
    }
  }

  onAlert(alert) {
    this.list.upsert(alert);
    this.want(alert, true);
    this.maybeAnnounce(alert);
    this.emit("alert");
  }

  upsert(alert) {
    this.list.upsert(alert);
    this.want(alert, true);
    this.emit("alert");
  }

  extra(id) {
    return this.extras.get(id);
  }

  householdName(id) {
    return this.households.get(id) || null;
  }

  /** Ask for an alert's story (and its household's name) unless it is already known. */
  want(alert, changed = false) {
    if (!this.households.has(alert.household_id)) {
      this.households.set(alert.household_id, null);
      api(`/api/v1/households/${encodeURIComponent(alert.household_id)}`).then(
        (hh) => {
          this.households.set(alert.household_id, hh.name || null);
          this.emit("household");
        },
        () => {},
      );
    }
    const have = this.extras.get(alert.alert_id);
    if (alert.state === "resolved" && !have && !changed) return;
    if (have && have.key === alert.updated_at && !changed) return;
    this.enqueue(alert.alert_id);
  }

  recheck() {
    const now = Date.now();
    for (const a of this.list.byId.values()) {
      const x = this.extras.get(a.alert_id);
      if (!x || a.state === "resolved") continue;
      // deliveries still under way (or none yet on a young alert): look again
      const young = now - Date.parse(a.created_at) < 120_000;
      // look again sooner at first, then less often (a dead webhook retries for hours)
      const every = Math.min(30_000, 4000 * 1.5 ** x.checks);
      if ((x.pending || (young && x.notes.length === 0)) && now - x.checked > every) this.enqueue(a.alert_id);
    }
  }

  enqueue(id) {
    if (!this.queue.includes(id)) this.queue.push(id);
    this.pump();
  }

  pump() {
    while (this.running < 3 && this.queue.length) {
      const id = this.queue.shift();
      this.running += 1;
      this.fetchStory(id).finally(() => {
        this.running -= 1;
        this.pump();
      });
    }
  }

  async fetchStory(id) {
    try {
      const path = `/api/v1/alerts/${encodeURIComponent(id)}`;
      const [detail, notes] = await Promise.all([api(path), api(`${path}/notifications`)]);
      const before = this.extras.get(id);
      const checks = before && before.key === detail.updated_at ? before.checks + 1 : 0;
      const x = { ...summarise(detail, notes.data), key: detail.updated_at, checked: Date.now(), checks };
      this.extras.set(id, x);
      const alert = this.list.byId.get(id);
      if (alert && (alert.updated_at || "") < (detail.updated_at || "")) this.list.upsert({ ...detail, history: undefined, detail: undefined });
      if (alert && x.help && !before?.help) this.maybeAnnounce(alert);
      this.emit("story");
    } catch {
      // shown as unknown; the next change or recheck asks again
    }
  }

  /** A new urgent alert (or one that just became a help request): beep and notify once. */
  maybeAnnounce(alert) {
    if (!this.loaded || alert.state !== "open") return;
    const x = this.extras.get(alert.alert_id);
    if (!isUrgent(alert, x)) return;
    const key = isHelp(alert, x) ? `${alert.alert_id}:help` : alert.alert_id;
    if (this.announced.has(key)) return;
    this.announced.add(key);
    this.announced.add(alert.alert_id);
    if (soundEnabled()) beep();
    if (notifyEnabled() && "Notification" in window && Notification.permission === "granted") {
      const kind = isHelp(alert, x) ? t("kind_help") : t(`kind_${alert.kind}`);
      const household = this.householdName(alert.household_id) || alert.household_id;
      try {
        const n = new Notification(t("notify_title", { kind }), {
          body: t("notify_body", { household, time: new Date(alert.event_ts).toLocaleTimeString() }),
          tag: key,
          requireInteraction: isHelp(alert, x),
        });
        n.onclick = () => {
          window.focus();
          location.hash = "#alerts";
        };
        attention.notifications += 1;
      } catch {
        // some browsers only allow notifications from a service worker
      }
    }
  }

  openUrgent() {
    let n = 0;
    for (const a of this.list.byId.values()) if (a.state === "open" && isUrgent(a, this.extras.get(a.alert_id))) n += 1;
    return n;
  }

  updateTitle() {
    const n = this.openUrgent();
    document.title = n ? `(${n}) ${t("app_title")}` : t("app_title");
  }
}

let current = null;

export function startFeed() {
  current?.stop();
  current = new AlertFeed();
  window.ansimAttention = attention;
  return current;
}

export function stopFeed() {
  current?.stop();
  current = null;
}

export function feed() {
  return current;
}
