"""Checks of the shipped monitoring files (TAP).

    prometheus_rules.py SOURCE_ROOT

- data/prometheus/photosync.rules.yml: `promtool check rules` accepts it;
  every alert has a severity, a summary, a description and a runbook
  that names a section of docs/operations.md.
- data/prometheus/photosync.rules.test.yml: `promtool test rules` passes,
  and it drives every alert both ways: at least one evaluation where the
  alert fires and one where it does not.
- data/grafana/photosync.json: valid JSON, a dashboard whose panels all
  have queries, unique panel ids, and every query valid PromQL once
  Grafana's variables are put in (checked by `promtool check rules` on a
  recording rule per query).
That these files name only metrics the roles expose is
tests/integration/test_metric_names.py, which runs the roles.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

from tap import finish, ok


def promtool(*args, cwd=None):
    p = subprocess.run(["promtool"] + list(args), capture_output=True,
                       text=True, timeout=120, cwd=cwd)
    return p.returncode, (p.stdout + p.stderr).strip().splitlines()


def anchors(markdown):
    """The anchors of a Markdown file's headings, as they are linked."""
    found = set()
    for line in markdown.splitlines():
        m = re.match(r"#+ (.*)", line)
        if m:
            a = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            found.add(a.replace(" ", "-"))
    return found


root = sys.argv[1]
prom = os.path.join(root, "data", "prometheus")
rules_path = os.path.join(prom, "photosync.rules.yml")
tests_path = os.path.join(prom, "photosync.rules.test.yml")
dash_path = os.path.join(root, "data", "grafana", "photosync.json")
with open(os.path.join(root, "docs", "operations.md"),
          encoding="utf-8") as f:
    ops_anchors = anchors(f.read())

# ---- the rules ----
rc, out = promtool("check", "rules", rules_path)
ok(rc == 0, "promtool check rules accepts photosync.rules.yml", out)
with open(rules_path, encoding="utf-8") as f:
    rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
alerts = [r["alert"] for r in rules if "alert" in r]
ok(len(alerts) == len(set(alerts)) and len(alerts) >= 10,
   "%d alerts, each name once" % len(alerts))
for r in rules:
    if "alert" not in r:
        continue
    a = r["alert"]
    ok(r.get("labels", {}).get("severity") in ("critical", "warning"),
       "%s: severity critical or warning" % a)
    notes = r.get("annotations", {})
    ok(all(notes.get(k) for k in ("summary", "description", "runbook")),
       "%s: summary, description and runbook" % a)
    m = re.match(r"docs/operations\.md#(.+)$", notes.get("runbook", ""))
    ok(m and m.group(1) in ops_anchors,
       "%s: its runbook is a section of docs/operations.md (%s)" % (
           a, notes.get("runbook")))

# ---- the rules' tests ----
rc, out = promtool("test", "rules", os.path.basename(tests_path), cwd=prom)
ok(rc == 0, "promtool test rules passes photosync.rules.test.yml", out)
with open(tests_path, encoding="utf-8") as f:
    cases = [c for t in yaml.safe_load(f)["tests"]
             for c in t.get("alert_rule_test", [])]
firing, quiet = set(), set()
for c in cases:
    (firing if c.get("exp_alerts") else quiet).add(c["alertname"])
for a in alerts:
    ok(a in firing and a in quiet, "%s is tested firing and not firing" % a)
unknown = sorted((firing | quiet) - set(alerts))
ok(not unknown, "the tests name only alerts of the rules%s" % (
    (": not " + ", ".join(unknown)) if unknown else ""))

# ---- the dashboard ----
try:
    with open(dash_path, encoding="utf-8") as f:
        dash = json.load(f)
    ok(True, "photosync.json is valid JSON")
except ValueError as e:
    ok(False, "photosync.json is valid JSON: %s" % e)
    dash = {}
ok(dash.get("title") and dash.get("uid") and
   isinstance(dash.get("panels"), list),
   "photosync.json is a dashboard: title, uid, panels")
panels = [p for p in dash.get("panels", []) if p.get("type") != "row"]
ids = [p.get("id") for p in dash.get("panels", [])]
ok(len(ids) == len(set(ids)) and None not in ids, "panel ids are unique")
exprs = []
for p in panels:
    targets = [t.get("expr", "") for t in p.get("targets", [])]
    ok(targets and all(targets), "panel %r has queries" % p.get("title"))
    exprs += [(p.get("title"), e) for e in targets]
for v in dash.get("templating", {}).get("list", []):
    q = v.get("query")
    if v.get("type") == "query":
        q = q.get("query") if isinstance(q, dict) else q
        m = re.match(r"label_values\((.*), *\w+\)$", q or "")
        ok(m, "variable %s is label_values(SELECTOR, LABEL)" % v["name"])
        if m:
            exprs.append(("variable " + v["name"], m.group(1)))
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m",
                "$__range": "1h", "$job": ".*", "$instance": ".*"}
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "dashboard.rules.yml")
    recs = []
    for i, (title, e) in enumerate(exprs):
        for k, v in GRAFANA_VARS.items():
            e = e.replace(k, v)
        left = re.findall(r"\$\w+", e)
        ok(not left, "%s: only known Grafana variables%s" % (
            title, (": " + ", ".join(left)) if left else ""))
        recs.append({"record": "dashboard_query_%d" % i, "expr": e})
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recs}]},
                       f)
    rc, out = promtool("check", "rules", path)
    ok(rc == 0, "every dashboard query (%d) is valid PromQL" % len(recs),
       out)

sys.exit(finish())
