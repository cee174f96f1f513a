// Boot: sign-in with a token, then the operator console or the resident's page by role.
import { api, ApiError, getToken, setToken, setUnauthorizedHandler } from "./api.js";
import { applyStatic, getLang, onLangChange, setLang, t } from "./i18n.js";
import { clear } from "./dom.js";
import { feed, startFeed, stopFeed } from "./feed.js";

const OPERATOR_VIEWS = {
  alerts: () => import("./views/alerts.js"),
  fleet: () => import("./views/fleet.js"),
  enrol: () => import("./views/enrol.js"),
  map: () => import("./views/mapview.js"),
  audit: () => import("./views/audit.js"),
  jobs: () => import("./views/jobs.js"),
};

const $ = (id) => document.getElementById(id);
let me = null;
let active = null; // {name, view}
let routeSeq = 0;

async function signIn(token) {
  setToken(token);
  try {
    me = await api("/api/v1/whoami");
  } catch (err) {
    setToken(null);
    me = null;
    throw err;
  }
  return me;
}

function signOut() {
  stopFeed();
  active?.view.destroy?.();
  active = null;
  me = null;
  setToken(null);
  showSignIn();
}

function showSignIn(message = "") {
  $("operator").hidden = true;
  $("resident").hidden = true;
  $("sign-out").hidden = true;
  $("whoami").textContent = "";
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("token-input").value = "";
  $("token-input").focus();
}

function renderWhoami() {
  $("whoami").textContent = me ? t("signed_in_as", { actor: me.household_name || me.actor }) : "";
}

async function route() {
  if (!me) return;
  renderWhoami();
  $("signin").hidden = true;
  $("sign-out").hidden = false;
  if (me.role === "resident") {
    $("operator").hidden = true;
    $("resident").hidden = false;
    if (!active) {
      const mod = await import("./views/resident.js");
      active = { name: "resident", view: mod.mount($("resident"), me) };
    }
    return;
  }
  $("resident").hidden = true;
  $("operator").hidden = false;
  // escalations and help requests go nowhere without a control-centre webhook: say so loudly
  $("no-centre-banner").hidden = me.centre_webhook !== false;
  if (!feed()) startFeed(); // alerts are heard (title, sound) on every operator page
  const name = location.hash.slice(1) in OPERATOR_VIEWS ? location.hash.slice(1) : "alerts";
  for (const a of document.querySelectorAll(".tabs a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (active?.name === name) return;
  const seq = ++routeSeq;
  active?.view.destroy?.();
  active = null;
  const mod = await OPERATOR_VIEWS[name]();
  if (seq !== routeSeq) return;
  const host = clear($("op-view"));
  active = { name, view: mod.mount(host, me) };
}

function boot() {
  document.documentElement.lang = getLang();
  applyStatic(document);
  $("lang-toggle").addEventListener("click", () => setLang(getLang() === "ko" ? "en" : "ko"));
  onLangChange(() => {
    renderWhoami();
    active?.view.rerender?.();
  });
  $("sign-out").addEventListener("click", signOut);
  setUnauthorizedHandler(() => {
    if (me) {
      stopFeed();
      active?.view.destroy?.();
      active = null;
      me = null;
      setToken(null);
      showSignIn(t("err_token"));
    }
  });
  window.addEventListener("hashchange", route);
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) {
      $("signin-error").textContent = t("err_token");
      return;
    }
    try {
      await signIn(token);
      await route();
    } catch (err) {
      const msg = err instanceof ApiError && err.status === 0 ? t("err_network") : t("err_token");
      $("signin-error").textContent = msg;
    }
  });
  const saved = getToken();
  if (saved) {
    signIn(saved).then(route, () => showSignIn());
  } else {
    showSignIn();
  }
}

boot();
