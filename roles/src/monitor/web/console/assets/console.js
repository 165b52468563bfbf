// cronvisor console: the little the pages need beyond HTML. Times in the browser's zone,
// actions sent to the JSON API (session cookie + CSRF token), the job form with errors beside
// their fields and a preview of the rule, and a run's output as it is printed.
//
// Everything a job or a person typed is put on the page as text (textContent), never as HTML.
"use strict";

(function () {
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function pad(n) { return String(n).padStart(2, "0"); }
  function local(ms) {
    const d = new Date(ms);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function localTimes(root) {
    root.querySelectorAll("time[data-ms]").forEach(function (t) {
      t.textContent = local(Number(t.dataset.ms));
    });
    root.querySelectorAll("text[data-hour]").forEach(function (t) {
      t.textContent = pad(new Date(Number(t.dataset.hour)).getHours()) + ":00";
    });
  }

  function notice(text) {
    const n = document.getElementById("notice");
    if (!n) { return; }
    n.textContent = text;
    n.hidden = !text;
    if (text) { n.focus && n.scrollIntoView({ block: "nearest" }); }
  }

  async function api(method, url, body) {
    const headers = { "X-CSRF-Token": csrf };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    const resp = await fetch(url, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = null;
    const text = await resp.text();
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    return { ok: resp.ok, status: resp.status, data: data };
  }

  function errorOf(r) {
    if (r.data && r.data.error) { return r.data.error; }
    return { message: "the API answered " + r.status };
  }

  // Buttons that change something: data-post (URL), data-method, data-confirm, data-then.
  document.addEventListener("click", async function (ev) {
    const b = ev.target.closest("button[data-post]");
    if (!b) { return; }
    ev.preventDefault();
    if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) { return; }
    b.disabled = true;
    const body = b.dataset.body ? JSON.parse(b.dataset.body) : undefined;
    const r = await api(b.dataset.method || "POST", b.dataset.post, body);
    b.disabled = false;
    if (!r.ok) {
      const e = errorOf(r);
      notice((e.field ? e.field + ": " : "") + e.message);
      return;
    }
    const then = b.dataset.then;
    if (then === "run" && r.data && r.data.run_id) {
      window.location.assign("/runs/" + r.data.run_id);
    } else if (then && then.charAt(0) === "/") {
      window.location.assign(then);
    } else if (b.id !== "kill") {
      window.location.reload();
    } else {
      notice("Kill requested.");
    }
  });

  // ---- A run with parameters (/jobs/{job}/run) --------------------------------------------

  const runForm = document.querySelector("#run-form");
  if (runForm) {
    runForm.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const params = {};
      runForm.querySelectorAll("[data-param]").forEach(function (el) {
        if (el.value !== "") { params[el.dataset.param] = el.value; }
      });
      const r = await api("POST", runForm.dataset.action, { params: params });
      if (r.ok && r.data && r.data.run_id) {
        window.location.assign("/runs/" + r.data.run_id);
      } else if (!r.ok) {
        const e = errorOf(r);
        notice((e.field ? e.field + ": " : "") + e.message);
      }
    });
  }

  // ---- A backfill (/jobs/{job}/backfill): preview (dry run), then start -------------------

  const bfForm = document.querySelector("#backfill-form");
  if (bfForm) {
    const field = function (name) { return bfForm.querySelector('[name="' + name + '"]'); };
    const send = async function (dry) {
      bfForm.querySelectorAll("[data-error-for]").forEach(function (e) { e.textContent = ""; });
      notice("");
      const body = { from: field("from").value, to: field("to").value,
        all: field("all").checked, dry_run: dry };
      if (field("parallel").value !== "") { body.parallel = Number(field("parallel").value); }
      const r = await api("POST", bfForm.dataset.action, body);
      if (!r.ok) {
        const e = errorOf(r);
        const slot = e.field && bfForm.querySelector('[data-error-for="bf-' + e.field + '"]');
        if (slot) { slot.textContent = e.message; }
        notice((e.field ? e.field + ": " : "") + e.message);
        return;
      }
      if (dry) {
        const plan = document.getElementById("bf-plan");
        plan.textContent = "Would run " + r.data.would_run + " of " + r.data.total + " instants" +
          (r.data.would_skip ? " (" + r.data.would_skip + " already succeeded: left out)" : "") + ".";
        plan.hidden = false;
      } else {
        window.location.assign(bfForm.dataset.then);
      }
    };
    bfForm.addEventListener("submit", function (ev) { ev.preventDefault(); send(false); });
    document.getElementById("bf-preview").addEventListener("click", function (ev) {
      ev.preventDefault();
      send(true);
    });
  }

  // ---- The job form --------------------------------------------------------------------

  function valueOf(el) {
    const kind = el.dataset.kind;
    if (kind === "list") {
      return Array.from(el.querySelectorAll("input[type=checkbox]"))
        .filter(function (c) { return c.checked; })
        .map(function (c) { return c.value; });
    }
    if (kind === "env") {
      const out = {};
      el.value.split("\n").forEach(function (line) {
        const i = line.indexOf("=");
        if (line.trim() && i > 0) { out[line.slice(0, i).trim()] = line.slice(i + 1); }
        else if (line.trim()) { out[line.trim()] = ""; }
      });
      return out;
    }
    if (el.dataset.field === "secret_params" || el.dataset.field === "calendars") {
      return el.value.split(",").map(function (s) { return s.trim(); })
        .filter(function (s) { return s; });
    }
    if (kind === "lines") {
      return el.value.split("\n").map(function (s) { return s.trim(); })
        .filter(function (s) { return s; });
    }
    if (kind === "after") {
      return el.value.split(",").map(function (s) { return s.trim(); })
        .filter(function (s) { return s; })
        .map(function (s) {
          const i = s.indexOf(":");
          return i > 0 ? { job: s.slice(0, i).trim(), on: s.slice(i + 1).trim() } : { job: s, on: "success" };
        });
    }
    if (kind === "headers") {
      const out = {};
      el.value.split("\n").forEach(function (line) {
        const i = line.indexOf(":");
        if (line.trim() && i > 0) { out[line.slice(0, i).trim()] = line.slice(i + 1).trim(); }
        else if (line.trim()) { out[line.trim()] = ""; }
      });
      return out;
    }
    return el.value;
  }

  function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }
  function empty(v) {
    if (Array.isArray(v)) { return v.length === 0; }
    if (v && typeof v === "object") { return Object.keys(v).length === 0; }
    return String(v).trim() === "";
  }

  function setupForm(form) {
    const fields = Array.from(form.querySelectorAll("[data-field]"));
    const initial = new Map(fields.map(function (f) { return [f, valueOf(f)]; }));
    const editing = form.dataset.method === "PATCH";

    function clearErrors() {
      form.querySelectorAll("[data-error-for]").forEach(function (e) { e.textContent = ""; });
      form.querySelectorAll("[aria-invalid]").forEach(function (e) { e.removeAttribute("aria-invalid"); });
    }

    function showError(err) {
      const slot = err.field && form.querySelector('[data-error-for="' + CSS.escape(err.field) + '"]');
      if (slot) {
        slot.textContent = err.message;
        const input = form.querySelector('[data-field="' + CSS.escape(err.field) + '"]');
        if (input) {
          input.setAttribute("aria-invalid", "true");
          (input.focus ? input : input.querySelector("input")).focus();
        }
        notice("");
      } else {
        notice((err.field ? err.field + ": " : "") + err.message);
      }
    }

    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      clearErrors();
      const body = {};
      fields.forEach(function (f) {
        const name = f.dataset.field;
        let v = valueOf(f);
        const changed = !same(v, initial.get(f));
        if (editing ? !changed : (empty(v) && name !== "alarm_on")) { return; }
        if (f.dataset.kind === "int") {
          if (String(v).trim() === "") {
            if (name !== "timeout_secs") { return; }
            v = 0;
          } else {
            v = Number(v);
          }
        }
        body[name] = v;
      });
      if (!editing && empty(body.http_url || "")) {
        ["http_method", "http_headers", "http_body", "http_expect_status"].forEach(function (k) {
          delete body[k];
        });
      }
      const r = await api(form.dataset.method, form.dataset.action, body);
      if (r.ok && form.dataset.then) {
        window.location.assign(form.dataset.then);
      } else if (r.ok && r.data && r.data.name) {
        window.location.assign("/jobs/" + encodeURIComponent(r.data.name));
      } else if (!r.ok) {
        showError(errorOf(r));
      }
    });

    // The rule's next instants, as it is typed.
    const rule = form.querySelector("#schedule");
    const zone = form.querySelector("#timezone");
    const list = form.querySelector("#preview-list");
    const words = form.querySelector("#preview-words");
    const perr = form.querySelector("#preview-error");
    let timer = null;
    async function preview() {
      const cals = form.querySelector("#calendars");
      const mode = form.querySelector("#calendar_mode");
      const q = "/api/v1/next?count=5&rule=" + encodeURIComponent(rule.value) +
        "&tz=" + encodeURIComponent(zone.value) +
        (cals && cals.value.trim() ? "&calendars=" + encodeURIComponent(cals.value) +
          "&calendar_mode=" + encodeURIComponent(mode ? mode.value : "skip") : "");
      list.textContent = "";
      words.textContent = "";
      perr.textContent = "";
      if (!rule.value.trim()) { return; }
      const r = await api("GET", q);
      if (!r.ok) { perr.textContent = errorOf(r).message; return; }
      words.textContent = " — " + (r.data.words || "as the rule says") + " (" + r.data.timezone + ")";
      if (r.data.undecided) { perr.textContent = r.data.undecided; }
      r.data.instants.forEach(function (ms) {
        const li = document.createElement("li");
        const t = document.createElement("time");
        t.dateTime = new Date(ms).toISOString();
        t.title = new Date(ms).toISOString() + " (UTC)";
        t.textContent = local(ms);
        li.appendChild(t);
        list.appendChild(li);
      });
    }
    function later() { clearTimeout(timer); timer = setTimeout(preview, 250); }
    // A field's error goes once the field is changed.
    fields.forEach(function (f) {
      f.addEventListener("input", function () {
        const slot = form.querySelector('[data-error-for="' + CSS.escape(f.dataset.field) + '"]');
        if (slot) { slot.textContent = ""; }
        f.removeAttribute("aria-invalid");
      });
    });
    if (rule && zone && list) {
      rule.addEventListener("input", later);
      zone.addEventListener("input", later);
      ["#calendars", "#calendar_mode"].forEach(function (sel) {
        const el = form.querySelector(sel);
        if (el) { el.addEventListener("input", later); }
      });
      preview();
    }
  }

  // ---- A run's output, live ------------------------------------------------------------

  function follow(section) {
    const out = document.getElementById("stdout");
    const err = document.getElementById("stderr");
    const es = new EventSource("/api/v1/runs/" + encodeURIComponent(section.dataset.run) + "/output");
    function append(pre, text) {
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(document.createTextNode(text));
      if (atEnd) { pre.scrollTop = pre.scrollHeight; }
    }
    es.addEventListener("output", function (ev) {
      const c = JSON.parse(ev.data);
      const pre = c.stream === "stderr" ? err : out;
      if (c.skipped > 0) { append(pre, "\n[... cronvisor: " + c.skipped + " bytes cut ...]\n"); }
      append(pre, c.text);
    });
    function badge(state, tone) {
      document.querySelectorAll(".bar .state").forEach(function (b) {
        b.textContent = state;
        b.dataset.state = state;
        b.className = "state " + tone;
      });
    }
    es.addEventListener("state", function (ev) {
      badge(JSON.parse(ev.data).state, "live");
    });
    es.addEventListener("end", function (ev) {
      const c = JSON.parse(ev.data);
      es.close();
      badge(c.state, c.state === "succeeded" ? "ok" :
        (c.state === "killed" || c.state === "skipped") ? "warn" : "bad");
      const exit = document.getElementById("exit");
      if (exit) { exit.textContent = c.exit_code === null ? "—" : String(c.exit_code); }
      const e = document.getElementById("error");
      if (e) { e.textContent = c.error || "—"; }
      const kill = document.getElementById("kill");
      if (kill) { kill.remove(); }
      const f = document.getElementById("follow");
      if (f) { f.textContent = "Run ended: " + c.state + "."; }
      section.dataset.live = "false";
      section.dataset.ended = c.state;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    document.querySelectorAll("form[data-action]:not(#run-form):not(#backfill-form)")
      .forEach(setupForm);
    const output = document.getElementById("output");
    if (output && output.dataset.live === "true") { follow(output); }
  });
})();
