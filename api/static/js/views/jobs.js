// Operator: the scheduler's jobs, with "run now".
import { api } from "../api.js";
import { fill, fmtTime, h, toast } from "../dom.js";
import { t } from "../i18n.js";

export function mount(host) {
  let jobs = null;
  let leader = undefined;
  const queued = new Map();
  const root = h("section", { class: "card", "aria-labelledby": "jobs-title" });
  host.append(root);

  async function load() {
    try {
      const body = await api("/api/v1/scheduler/jobs");
      jobs = body.data;
      leader = body.leader;
      render();
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
    }
  }

  async function run(job) {
    try {
      const r = await api(`/api/v1/scheduler/jobs/${encodeURIComponent(job.job_id)}/run`, { method: "POST" });
      queued.set(job.job_id, r.request_id);
      render();
      setTimeout(load, 3000);
    } catch (err) {
      toast(t("err_generic", { detail: err.message }), "error");
    }
  }

  function lastRun(j) {
    const r = j.last_run;
    if (!r) return "—";
    return h("span", {}, h("span", { class: `badge outcome-${r.outcome}` }, r.outcome), " ", fmtTime(r.finished_at || r.started_at));
  }

  function render() {
    fill(root, 
      h("div", { class: "card-head" }, h("h2", { id: "jobs-title" }, t("jobs_title")), h("button", { type: "button", class: "btn", onclick: load }, t("refresh"))),
      leader === undefined
        ? null
        : h("p", { class: leader ? "small muted" : "small warn", "data-testid": "jobs-leader" }, leader ? t("jobs_leader", { who: leader }) : t("jobs_no_leader")),
      jobs === null
        ? h("p", { class: "muted" }, t("loading"))
        : jobs.length === 0
          ? h("p", { class: "empty", "data-testid": "jobs-empty" }, t("empty_jobs"))
          : h(
              "div",
              { class: "table-wrap" },
              h(
                "table",
                { class: "table", "data-testid": "jobs-table" },
                h("caption", { class: "sr-only" }, t("jobs_title")),
                h("thead", {}, h("tr", {}, [t("col_job"), t("col_schedule"), t("col_next"), t("col_last"), t("col_actions")].map((c) => h("th", { scope: "col" }, c)))),
                h(
                  "tbody",
                  {},
                  jobs.map((j) =>
                    h(
                      "tr",
                      { "data-testid": "job-row", dataset: { jobId: j.job_id } },
                      h("th", { scope: "row" }, h("code", {}, j.job_id), h("div", { class: "small muted" }, j.description)),
                      h("td", {}, j.schedule),
                      h("td", { class: "nowrap" }, fmtTime(j.next_run_at)),
                      h("td", {}, lastRun(j)),
                      h(
                        "td",
                        {},
                        h("button", { type: "button", class: "btn", "aria-label": `${t("run_now")}: ${j.job_id}`, onclick: () => run(j) }, t("run_now")),
                        queued.has(j.job_id) ? h("div", { class: "small muted", role: "status" }, t("queued", { id: queued.get(j.job_id) })) : null,
                      ),
                    ),
                  ),
                ),
              ),
            ),
    );
  }

  render();
  load();
  return { destroy() {}, rerender: render };
}
