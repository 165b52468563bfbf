"""The web console in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright), against a running `cronvisor up` that tests/integration/console.rs started.

Each check is what an operator does: log in, add a job through the form (a bad rule first),
see it fire, open a run, watch a running job's lines arrive, kill one, page through runs; and
what an attacker tries: a job that prints markup runs no script. A SIGHUP reload during a live
tail loses and doubles no line.

    python3 tests/browser/console_test.py --url http://127.0.0.1:PORT --pid PID \
        --admin NAME:PASSWORD --viewer NAME:PASSWORD --operator-b NAME:PASSWORD [--screenshots DIR]

Exits non-zero with a message naming the check that failed. Every wait is bounded.
"""

import argparse
import os
import re
import signal
import sys
import time

from playwright.sync_api import sync_playwright, expect

WAIT_MS = 20_000


class Console:
    def __init__(self, page, url, shots):
        self.page = page
        self.url = url.rstrip("/")
        self.shots = shots
        self.errors = []
        self.alerts = []
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        # Errors in the browser's console (a CSP violation, a script error) fail the page;
        # the 4xx answers the checks provoke on purpose are not errors of the page.
        page.on(
            "console",
            lambda m: self.errors.append(f"console {m.type}: {m.text}")
            if m.type == "error" and "Failed to load resource" not in m.text
            else None,
        )
        page.on("dialog", self.dialog)

    def dialog(self, d):
        # Confirmations are the console's own (kill, delete); an alert can only be injected.
        if d.type != "confirm":
            self.alerts.append(f"{d.type}: {d.message}")
        d.accept()

    def go(self, path):
        resp = self.page.goto(self.url + path)
        assert resp is not None and resp.ok, f"{path}: {resp and resp.status}"
        return resp

    def shot(self, name):
        if self.shots:
            self.page.screenshot(path=os.path.join(self.shots, f"{name}.png"), full_page=True)

    def clean(self, what):
        assert not self.errors, f"{what}: {self.errors}"
        assert not self.alerts, f"{what}: a script ran: {self.alerts}"
        width = self.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1280, f"{what}: {width} px wide at a 1280 px window (horizontal scroll)"


def check(name, fn, *args):
    started = time.monotonic()
    fn(*args)
    print(f"ok   {name} ({time.monotonic() - started:.1f} s)", flush=True)


def log_in(c, admin, password):
    c.page.goto(c.url + "/jobs")
    expect(c.page).to_have_url(re.compile(r"/login\?next=%2Fjobs$"))
    c.shot("login")
    c.page.fill("#name", admin)
    c.page.fill("#password", "not-the-password")
    c.page.click("button[type=submit]")
    expect(c.page.locator(".login .error")).to_have_text("Wrong user or password.")
    c.page.fill("#name", admin)
    c.page.fill("#password", password)
    c.page.click("button[type=submit]")
    expect(c.page).to_have_url(c.url + "/jobs")
    cookie = [k for k in c.page.context.cookies() if k["name"] == "cronvisor_session"]
    assert cookie, "no session cookie"
    assert cookie[0]["httpOnly"], "session cookie readable by scripts"
    assert cookie[0]["sameSite"] == "Strict", cookie[0]
    assert c.page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert password not in c.page.content(), "the password is on the page"
    expect(c.page.locator("header .who")).to_contain_text(f"{admin} · admin")


def log_in_as(browser, url, who, shots):
    """A new browser context logged in as `who` (NAME:PASSWORD)."""
    name, password = who.split(":", 1)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(WAIT_MS)
    c = Console(page, url, shots)
    c.page.goto(c.url + "/login")
    c.page.fill("#name", name)
    c.page.fill("#password", password)
    c.page.click("button[type=submit]")
    expect(c.page).to_have_url(c.url + "/")
    return c


def a_viewer_sees_no_button_that_changes_anything(browser, url, who):
    v = log_in_as(browser, url, who, None)
    v.go("/jobs")
    expect(v.page.locator("table.jobs")).to_be_visible()
    assert v.page.locator("button").filter(has_text=re.compile("Run now|Pause|Delete")).count() == 0
    assert v.page.locator("text=New job").count() == 0
    assert v.page.locator('nav a[href="/users"]').count() == 0
    v.page.locator("table.jobs a").first.click()
    assert v.page.locator(".bar button").count() == 0
    # The API refuses it too, even with the session's CSRF token.
    status = v.page.evaluate(
        "fetch('/api/v1/jobs/live/run', {method: 'POST', headers: {'X-CSRF-Token':"
        " document.querySelector('meta[name=csrf-token]').content}}).then(r => r.status)"
    )
    assert status == 403, f"a viewer's run now answered {status}"
    resp = v.page.goto(url + "/users")
    assert resp.status == 403, resp.status
    v.clean("viewer")
    v.page.close()


def an_operator_of_another_group_sees_none_of_these_jobs(browser, url, who):
    o = log_in_as(browser, url, who, None)
    o.go("/jobs")
    expect(o.page.locator("p.muted").first).to_contain_text("0 of 0 jobs")
    resp = o.page.goto(url + "/jobs/live")
    assert resp.status == 404, resp.status
    o.go("/runs")
    assert o.page.locator("table.runs").count() == 0
    o.page.close()


def logging_out_ends_the_session(browser, url, who):
    c = log_in_as(browser, url, who, None)
    cookies = c.page.context.cookies()
    c.page.click("form.logout button")
    expect(c.page).to_have_url(re.compile(r"/login$"))
    # The cookie's copy is worth nothing now: the session ended in the store.
    other = browser.new_context()
    other.add_cookies(cookies)
    p = other.new_page()
    p.goto(url + "/jobs")
    expect(p).to_have_url(re.compile(r"/login\?next="))
    other.close()
    c.page.close()


def security_headers(c):
    resp = c.go("/")
    h = resp.headers
    assert "script-src 'self'" in h.get("content-security-policy", ""), h
    assert "'unsafe-inline'" not in h.get("content-security-policy", ""), h
    assert h.get("x-frame-options") == "DENY", h
    assert h.get("x-content-type-options") == "nosniff", h
    # An API call without the CSRF token is refused even with the session cookie.
    status = c.page.evaluate(
        "fetch('/api/v1/jobs', {method: 'POST', body: '{}',"
        " headers: {'Content-Type': 'application/json'}}).then(r => r.status)"
    )
    assert status == 403, f"POST without CSRF token answered {status}"


def add_job_through_the_form(c):
    c.go("/jobs/new")
    c.page.fill("#name", "browser-job")
    c.page.fill("#schedule", "61 * * * *")
    expect(c.page.locator("#preview-error")).not_to_be_empty(timeout=WAIT_MS)
    c.page.fill("#command", "echo hello from the browser")
    c.page.click("#job-form button[type=submit]")
    err = c.page.locator('[data-error-for="schedule"]')
    expect(err).to_contain_text("61", timeout=WAIT_MS)
    assert c.page.url.endswith("/jobs/new"), "a bad rule left the form"
    c.page.fill("#schedule", "*/2 * * * * *")
    expect(err).to_be_empty()
    expect(c.page.locator("#preview-list time")).to_have_count(5, timeout=WAIT_MS)
    expect(c.page.locator("#preview-words")).to_contain_text("every 2 seconds")
    c.shot("job-form")
    c.page.click("#job-form button[type=submit]")
    expect(c.page).to_have_url(c.url + "/jobs/browser-job", timeout=WAIT_MS)
    c.clean("job form")


def see_it_fire_and_open_a_run(c):
    deadline = time.monotonic() + 20
    while True:
        c.go("/jobs/browser-job")
        rows = c.page.locator("table.runs tbody tr")
        if rows.count() > 0 and "succeeded" in rows.first.inner_text():
            break
        assert time.monotonic() < deadline, "browser-job never ran"
        c.page.wait_for_timeout(500)
    c.shot("job")
    c.page.locator("table.runs tbody tr").first.locator("a").first.click()
    expect(c.page.locator("#stdout")).to_have_text("hello from the browser\n", timeout=WAIT_MS)
    c.clean("run page")


def add_job(c, name, rule, command):
    status = c.page.evaluate(
        """([name, rule, command]) => fetch('/api/v1/jobs', {method: 'POST',
             headers: {'Content-Type': 'application/json',
                       'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content},
             body: JSON.stringify({name: name, schedule: rule, command: command})})
           .then(r => r.status)""",
        [name, rule, command],
    )
    assert status == 201, f"adding {name}: {status}"


def run_now(c, name):
    """Clicks Run now on the jobs page; lands on the new run's page. Returns its id."""
    c.go("/jobs?q=" + name)
    c.page.locator(f'tr[data-job="{name}"] button', has_text="Run now").click()
    expect(c.page).to_have_url(re.compile(r"/runs/\d+$"), timeout=WAIT_MS)
    return c.page.url.rsplit("/", 1)[1]


def watch_lines_arrive_live(c):
    add_job(c, "live", "@yearly", "for i in $(seq 1 30); do echo tick $i; sleep 0.2; done")
    run_now(c, "live")
    expect(c.page.locator("#stdout")).to_contain_text("tick 3\n", timeout=WAIT_MS)
    # The lines came while the run was going: the badge still says so.
    badge = c.page.locator(".bar .state").first
    assert badge.inner_text() in ("running", "dispatched"), badge.inner_text()
    c.shot("run-live")
    expect(c.page.locator("#output")).to_have_attribute("data-ended", "succeeded", timeout=WAIT_MS)
    want = "".join(f"tick {i}\n" for i in range(1, 31))
    text = c.page.locator("#stdout").text_content()
    assert text == want, f"the live output reads:\n{text}"
    expect(badge).to_have_text("succeeded")
    c.clean("live run")


def kill_a_run(c):
    add_job(c, "sleeper", "@yearly", "echo started; sleep 300")
    run_now(c, "sleeper")
    expect(c.page.locator("#stdout")).to_have_text("started\n", timeout=WAIT_MS)
    c.page.click("#kill")
    expect(c.page.locator("#output")).to_have_attribute("data-ended", "killed", timeout=WAIT_MS)
    expect(c.page.locator("#error")).to_have_text("killed: by an operator")
    c.page.reload()
    expect(c.page.locator(".bar .state").first).to_have_text("killed")
    c.clean("kill")


def markup_in_output_runs_no_script(c):
    add_job(
        c,
        "xss",
        "@yearly",
        "echo '<script>window.__xss=1</script>'; "
        "echo '<img src=x onerror=\"window.__xss=2;alert(2)\">' >&2; sleep 1",
    )
    run_now(c, "xss")
    expect(c.page.locator("#output")).to_have_attribute("data-ended", "succeeded", timeout=WAIT_MS)
    for reload in (False, True):  # live (script-appended), then server-rendered
        if reload:
            c.page.reload()
        assert c.page.evaluate("window.__xss") is None, "markup from a job ran"
        expect(c.page.locator("#stdout")).to_have_text("<script>window.__xss=1</script>\n")
        expect(c.page.locator("#stderr")).to_contain_text("<img src=x onerror=")
        assert c.page.locator("#output img").count() == 0
    c.clean("xss")


def a_reload_during_a_live_tail_loses_nothing(c, pid):
    add_job(c, "long", "@yearly", "for i in $(seq 1 50); do echo line $i; sleep 0.1; done")
    run_now(c, "long")
    expect(c.page.locator("#stdout")).to_contain_text("line 5\n", timeout=WAIT_MS)
    os.kill(pid, signal.SIGHUP)
    expect(c.page.locator("#output")).to_have_attribute("data-ended", "succeeded", timeout=WAIT_MS)
    text = c.page.locator("#stdout").text_content()
    want = "".join(f"line {i}\n" for i in range(1, 51))
    assert text == want, f"after a reload the output reads:\n{text}"
    c.clean("reload during tail")


def page_through_runs(c):
    deadline = time.monotonic() + 20
    while True:
        c.go("/runs?limit=3")
        first = [int(x) for x in c.page.locator("table.runs tbody tr td:first-child").all_inner_texts()]
        if len(first) == 3 and c.page.locator("a[rel=next]").count() == 1:
            break
        assert time.monotonic() < deadline, "never 4 runs to page through"
        c.page.wait_for_timeout(500)
    c.shot("runs")
    c.page.click("a[rel=next]")
    second = [int(x) for x in c.page.locator("table.runs tbody tr td:first-child").all_inner_texts()]
    assert second and max(second) < min(first), (first, second)
    assert sorted(second, reverse=True) == second, second
    c.page.click("text=Newest")
    again = [int(x) for x in c.page.locator("table.runs tbody tr td:first-child").all_inner_texts()]
    assert again[0] >= first[0], (first, again)
    c.page.select_option("select[name=state]", "killed")
    c.page.click("form.filters button[type=submit]")
    expect(c.page).to_have_url(re.compile(r"state=killed"))
    states = c.page.locator("table.runs tbody .state").all_inner_texts()
    assert states and set(states) == {"killed"}, states
    c.clean("runs paging")


def every_page_renders(c):
    for path, name in [
        ("/", "overview"),
        ("/jobs", "jobs"),
        ("/fleet", "fleet"),
        ("/alarms", "alarms"),
        ("/jobs/browser-job/edit", "job-edit"),
    ]:
        c.go(path)
        expect(c.page.locator("h1")).not_to_be_empty()
        c.shot(name)
        c.clean(path)
    c.go("/")
    assert c.page.locator("svg.chart rect").count() > 0, "no bar in the overview chart"
    expect(c.page.locator("text=executors")).to_be_visible()
    c.go("/fleet")
    expect(c.page.locator("table").first).to_contain_text("127.0.0.1")
    # Keyboard: the skip link and the navigation are reachable by Tab.
    c.page.keyboard.press("Tab")
    assert c.page.evaluate("document.activeElement.className") == "skip"


def the_usual_band_over_the_duration_chart(c):
    # browser-job has run every 2 s since it was added: ten successes teach its usual band.
    deadline = time.monotonic() + 30
    while True:
        c.go("/jobs/browser-job")
        if c.page.locator("figure.durations .usual-band").count() == 1:
            break
        assert time.monotonic() < deadline, "browser-job's usual band never appeared"
        c.page.wait_for_timeout(500)
    expect(c.page.locator("figure.durations figcaption")).to_contain_text("Usual: ")
    assert c.page.locator("figure.durations rect.bar").count() >= 10
    c.shot("job-durations")
    # Its setting in the form: a wrong one is refused beside its field.
    c.go("/jobs/browser-job/edit")
    expect(c.page.locator("#duration_alarm")).to_have_value("both")
    c.page.fill("#duration_alarm", "slow:0")
    c.page.click("#job-form button[type=submit]")
    expect(c.page.locator('[data-error-for="duration_alarm"]')).to_contain_text("1 to 100",
                                                                                timeout=WAIT_MS)
    c.page.fill("#duration_alarm", "slow:5")
    c.page.click("#job-form button[type=submit]")
    expect(c.page).to_have_url(c.url + "/jobs/browser-job", timeout=WAIT_MS)
    expect(c.page.locator("figure.durations figcaption")).to_contain_text("slow past")
    expect(c.page.locator("figure.durations figcaption")).not_to_contain_text("short under")
    c.clean("duration chart")


def edit_and_pause_and_delete(c):
    c.go("/jobs/browser-job/edit")
    c.page.fill("#timeout_secs", "45")
    c.page.click("#job-form button[type=submit]")
    expect(c.page).to_have_url(c.url + "/jobs/browser-job", timeout=WAIT_MS)
    expect(c.page.locator("dl")).to_contain_text("45.0 s")
    c.page.locator(".bar button", has_text="Pause").click()
    expect(c.page.locator(".bar button", has_text="Resume")).to_be_visible(timeout=WAIT_MS)
    c.page.locator(".bar button", has_text="Delete").click()
    expect(c.page).to_have_url(c.url + "/jobs", timeout=WAIT_MS)
    assert c.page.locator('tr[data-job="browser-job"]').count() == 0
    c.clean("edit, pause, delete")


def post_job(c, body):
    status = c.page.evaluate(
        """(body) => fetch('/api/v1/jobs', {method: 'POST',
             headers: {'Content-Type': 'application/json',
                       'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content},
             body: JSON.stringify(body)}).then(r => r.status)""",
        body,
    )
    assert status == 201, f"adding {body}: {status}"


def a_flow_drawn_and_rerun(c):
    add_job(c, "flow-root", "@yearly", "true")
    # The form's `after` field, with the other jobs offered.
    c.go("/jobs/new")
    c.page.fill("#name", "flow-child")
    assert c.page.locator("#job-names option[value='flow-root']").count() == 1
    c.page.fill("#after", "flow-nope")
    c.page.fill("#command", "test -e /tmp/cv-flow-fixed-$PPID-never")
    c.page.click("#job-form button[type=submit]")
    expect(c.page.locator('[data-error-for="after"]')).to_contain_text("no job `flow-nope`")
    c.page.fill("#after", "flow-root")
    assert c.page.locator("#requires").count() == 1, "the form has every field"
    c.page.click("#job-form button[type=submit]")
    expect(c.page).to_have_url(c.url + "/jobs/flow-child", timeout=WAIT_MS)
    expect(c.page.locator("dl")).to_contain_text("after flow-root")
    post_job(c, {"name": "flow-leaf", "after": [{"job": "flow-child"}], "command": "true"})
    post_job(c, {"name": "flow-page", "after": [{"job": "flow-child", "on": "failure"}],
                 "command": "true"})
    run_now(c, "flow-root")
    deadline = time.monotonic() + 20
    while True:
        c.go("/flows")
        rows = c.page.locator("table.flows tbody tr")
        if rows.count() > 0 and "failed" in rows.first.inner_text():
            break
        assert time.monotonic() < deadline, "the flow never ended"
        c.page.wait_for_timeout(300)
    c.shot("flows")
    rows.first.locator("a").first.click()
    expect(c.page.locator("svg.flow g.node")).to_have_count(4)
    states = {n.get_attribute("data-job"): n.get_attribute("data-state")
              for n in c.page.locator("svg.flow g.node").all()}
    assert states == {"flow-root": "succeeded", "flow-child": "failed",
                      "flow-leaf": "skipped", "flow-page": "succeeded"}, states
    assert c.page.locator("svg.flow text.label", has_text="failure").count() == 1
    c.shot("flow")
    # The failed node's box links to its run.
    c.page.locator('svg.flow g.node[data-job="flow-child"] a').click()
    expect(c.page).to_have_url(re.compile(r"/runs/\d+$"))
    expect(c.page.locator("#facts")).to_contain_text("Released by")
    c.page.go_back()
    c.page.locator("button", has_text="Rerun what did not succeed").click()
    expect(c.page.locator(".flow-facts")).to_contain_text("rerun 1", timeout=WAIT_MS)
    c.go("/jobs/flow-leaf")
    expect(c.page.locator("svg.flow")).to_be_visible()
    c.clean("flows")


def run_with_parameters(c):
    post_job(c, {"name": "with-params", "schedule": "@yearly",
                 "command": "echo day=$CRONVISOR_PARAM_DAY region=$CRONVISOR_PARAM_REGION",
                 "params": ["DAY", "REGION=eu"], "param_choices": ["REGION=eu|us"]})
    c.go("/jobs/with-params")
    c.page.locator(".bar a", has_text="Run now").click()
    expect(c.page).to_have_url(c.url + "/jobs/with-params/run")
    # DAY is required: the API's refusal shows.
    c.page.click("#run-form button[type=submit]")
    expect(c.page.locator("#notice")).to_contain_text("`DAY` is required", timeout=WAIT_MS)
    c.page.fill("#param-DAY", "2026-12-06")
    c.page.select_option("#param-REGION", "us")
    c.shot("run-params")
    c.page.click("#run-form button[type=submit]")
    expect(c.page).to_have_url(re.compile(r"/runs/\d+$"), timeout=WAIT_MS)
    expect(c.page.locator("#stdout")).to_have_text("day=2026-12-06 region=us\n", timeout=WAIT_MS)
    c.clean("run with parameters")


def a_backfill_from_its_form(c):
    post_job(c, {"name": "nightly", "schedule": "0 0 3 * * *", "timezone": "UTC",
                 "command": "echo $CRONVISOR_INSTANT"})
    c.go("/jobs/nightly")
    expect(c.page.locator("#backfills")).to_be_visible()
    c.page.locator(".bar a", has_text="Backfill").click()
    expect(c.page).to_have_url(c.url + "/jobs/nightly/backfill")
    # A range in the future is refused beside its field.
    c.page.fill("#bf-from", "2026-11-01")
    c.page.fill("#bf-to", "2099-01-01")
    c.page.click("#bf-preview")
    expect(c.page.locator('[data-error-for="bf-to"]')).to_contain_text("is in the future",
                                                                       timeout=WAIT_MS)
    c.page.fill("#bf-to", "2026-11-05")
    c.page.fill("#bf-parallel", "2")
    c.page.click("#bf-preview")
    expect(c.page.locator("#bf-plan")).to_have_text("Would run 5 of 5 instants.", timeout=WAIT_MS)
    c.shot("backfill-form")
    c.page.click("#backfill-form button[type=submit]")
    expect(c.page).to_have_url(c.url + "/jobs/nightly#backfills", timeout=WAIT_MS)
    deadline = time.monotonic() + 20
    while "done" not in c.page.locator("table.backfills tbody tr").first.inner_text():
        assert time.monotonic() < deadline, "the backfill never ended"
        c.page.wait_for_timeout(300)
        c.page.reload()
    row = c.page.locator("table.backfills tbody tr").first
    expect(row).to_contain_text("5 of 5, 5 succeeded")
    assert row.locator("progress").get_attribute("value") == "5"
    c.shot("backfills")
    c.clean("backfill")


def calendars_pages_and_a_job_on_workdays(c):
    c.go("/calendars")
    row = c.page.locator('tr[data-calendar="cn-workdays"]')
    expect(row).to_contain_text("2004 to 2026")
    c.shot("calendars")
    row.locator("a").first.click()
    expect(c.page).to_have_url(re.compile(r"/calendars/cn-workdays"))
    c.go("/calendars/cn-workdays?year=2026")
    # National Day is off, the make-up Saturday after it is on.
    assert c.page.locator('li[data-date="2026-10-01"]').get_attribute("class").startswith("off")
    assert c.page.locator('li[data-date="2026-10-10"]').get_attribute("class").startswith("on")
    c.shot("calendar")
    c.go("/calendars/cn-workdays?year=2031")
    expect(c.page.locator("#undecided")).to_contain_text("has no data for 2031-01-01")
    # The job form: calendars and their mode, the preview following them.
    c.go("/jobs/new")
    c.page.fill("#name", "cn-report")
    c.page.fill("#schedule", "0 0 9 * * *")
    c.page.fill("#timezone", "Asia/Shanghai")
    c.page.fill("#calendars", "nope")
    c.page.fill("#command", "true")
    c.page.click("#job-form button[type=submit]")
    expect(c.page.locator('[data-error-for="calendars"]')).to_contain_text("no calendar `nope`",
                                                                           timeout=WAIT_MS)
    c.page.fill("#calendars", "cn-workdays")
    c.page.select_option("#calendar_mode", "only")
    c.page.click("#job-form button[type=submit]")
    expect(c.page).to_have_url(c.url + "/jobs/cn-report", timeout=WAIT_MS)
    expect(c.page.locator("dl")).to_contain_text("cn-workdays (only)")
    # A maintenance window going now is shown on the overview.
    status = c.page.evaluate(
        """(body) => fetch('/api/v1/windows', {method: 'POST',
             headers: {'Content-Type': 'application/json',
                       'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content},
             body: JSON.stringify(body)}).then(r => r.status)""",
        {"name": "upgrade", "job": "cn-report", "every": "* * * * * *", "for": "1h"},
    )
    assert status == 201, f"adding a window: {status}"
    c.go("/")
    expect(c.page.locator('[data-window="upgrade"]')).to_contain_text("holds job cn-report until")
    c.clean("calendars")


def users_and_audit_pages(c):
    c.go("/users")
    c.page.fill("#u-name", "carol")
    c.page.select_option("#u-role", "operator")
    c.page.fill("#u-password", "short")
    c.page.click("#user-form button[type=submit]")
    expect(c.page.locator('[data-error-for="password"]')).to_contain_text("8 to 1024")
    c.page.fill("#u-password", "carol-password-1")
    c.page.click("#user-form button[type=submit]")
    expect(c.page.locator('tr[data-user="carol"]')).to_contain_text("operator", timeout=WAIT_MS)
    c.page.locator('tr[data-user="carol"] button', has_text="Disable").click()
    expect(c.page.locator('tr[data-user="carol"]')).to_contain_text("disabled", timeout=WAIT_MS)
    c.shot("users")
    c.go("/audit")
    table = c.page.locator("table.audit")
    expect(table).to_contain_text("user.add")
    expect(table).to_contain_text("job.add")
    expect(table).to_contain_text("run.kill")
    expect(table).to_contain_text("login.failed")
    c.shot("audit")
    c.go("/audit?job=live")
    actions = set(c.page.locator("table.audit td:nth-child(4)").all_inner_texts())
    assert actions == {"job.add", "job.run"}, actions
    c.clean("users and audit")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--admin", required=True, help="NAME:PASSWORD")
    ap.add_argument("--viewer", required=True, help="NAME:PASSWORD")
    ap.add_argument("--operator-b", required=True, help="NAME:PASSWORD, of another group")
    ap.add_argument("--screenshots")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    admin, password = args.admin.split(":", 1)
    if args.screenshots:
        os.makedirs(args.screenshots, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Paris")
        page.set_default_timeout(WAIT_MS)
        c = Console(page, args.url, args.screenshots)
        check("log in as a user; session cookie HttpOnly, SameSite=Strict", log_in, c, admin, password)
        check("security headers and CSRF", security_headers, c)
        check("add a job through the form, a bad rule first", add_job_through_the_form, c)
        check("see it fire and open a run", see_it_fire_and_open_a_run, c)
        check("a running job's lines arrive live", watch_lines_arrive_live, c)
        check("kill a run", kill_a_run, c)
        check("markup a job prints runs no script", markup_in_output_runs_no_script, c)
        check("a SIGHUP during a live tail", a_reload_during_a_live_tail_loses_nothing, c, args.pid)
        check("page through runs and filter", page_through_runs, c)
        check("a flow added through the form, drawn, and rerun", a_flow_drawn_and_rerun, c)
        check("a run with parameters, from its form", run_with_parameters, c)
        check("a backfill from its form, previewed, and its progress", a_backfill_from_its_form, c)
        check("calendars pages, and a job on China's workdays", calendars_pages_and_a_job_on_workdays, c)
        check("every page renders, 1280 px, keyboard", every_page_renders, c)
        check("a viewer sees no button that changes anything", a_viewer_sees_no_button_that_changes_anything, browser, args.url, args.viewer)
        check("an operator of another group sees none of these jobs", an_operator_of_another_group_sees_none_of_these_jobs, browser, args.url, args.operator_b)
        check("users and audit pages", users_and_audit_pages, c)
        check("logging out ends the session everywhere", logging_out_ends_the_session, browser, args.url, args.viewer)
        check("the usual band over the duration chart, and its setting", the_usual_band_over_the_duration_chart, c)
        check("edit, pause and delete a job", edit_and_pause_and_delete, c)
        browser.close()
    print("console: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL {e}", file=sys.stderr)
        sys.exit(1)
