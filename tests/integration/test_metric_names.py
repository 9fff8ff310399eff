"""The metrics the shipped alerting rules (data/prometheus/
photosync.rules.yml) and Grafana dashboard (data/grafana/photosync.json)
use are ones the roles really expose: a real master and portal, wired to
each other, one photo synced, both /metrics pages scraped. Every
photosync_ name in an expression of the rules, of the dashboard's panels
or of its variables must be declared by a role (`# TYPE`; a histogram's
_bucket, _sum and _count with it), and every label a selector matches on
must be one that metric's samples carry (where the scrape has samples of
it; job and instance are Prometheus' own). A selector with braces names
a photosync_ metric, or in the rules Prometheus' own `up`."""
import json
import os
import re

import yaml

from psync import done, metrics_parse, ok, wired

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
RULES = os.path.join(ROOT, "data", "prometheus", "photosync.rules.yml")
DASHBOARD = os.path.join(ROOT, "data", "grafana", "photosync.json")
TARGET_LABELS = {"job", "instance"}
_NAME = re.compile(r"(?<![A-Za-z0-9_:$])(photosync_[a-z0-9_]+)")
_SELECTOR = re.compile(r"(photosync_[a-z0-9_]+)\{([^}]*)\}")
_BRACED = re.compile(r"(?<![A-Za-z0-9_:$])([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def rule_exprs():
    with open(RULES, encoding="utf-8") as f:
        groups = yaml.safe_load(f)["groups"]
    return [("rule %s" % (r.get("alert") or r.get("record")), r["expr"])
            for g in groups for r in g["rules"]]


def dashboard_exprs():
    with open(DASHBOARD, encoding="utf-8") as f:
        d = json.load(f)
    found = []

    def walk(node, where):
        if isinstance(node, dict):
            where = node.get("title") or node.get("name") or where
            for k, v in node.items():
                if k in ("expr", "definition") and isinstance(v, str):
                    found.append(("dashboard %s" % where, v))
                else:
                    walk(v, where)
        elif isinstance(node, list):
            for v in node:
                walk(v, where)
    walk(d, "?")
    return found


m, p = wired()
r = p.owner_photo("contoso\\test1")
ok(r.status == 200 and "placeholder" not in (r.header("ETag") or ""),
   "setup: test1's photo synced from the master")

declared, labels_of = set(), {}
for role, node in (("master", m), ("portal", p)):
    resp = node.get("/metrics")
    ok(resp.status == 200, "%s /metrics answers 200" % role)
    samples, types = metrics_parse(resp.text())
    for name, kind in types.items():
        declared.add(name)
        if kind == "histogram":
            declared.update(name + s for s in ("_bucket", "_sum", "_count"))
    for name, ls, _ in samples:
        labels_of.setdefault(name, set()).update(ls)
ok(len(declared) > 30, "%d metric names declared by the two roles" %
   len(declared))

rules, panels = rule_exprs(), dashboard_exprs()
ok(len(rules) >= 10, "%d alerting rules read" % len(rules))
ok(len(panels) >= 20, "%d dashboard expressions read" % len(panels))
used = set()
for where, expr in rules + panels:
    names = set(_NAME.findall(expr))
    used |= names
    unknown = sorted(names - declared)
    ok(not unknown, "%s: every metric is exposed%s" % (
        where, (": not " + ", ".join(unknown)) if unknown else ""))
    foreign = sorted(n for n in set(_BRACED.findall(expr)) if not
                     n.startswith("photosync_") and not
                     (n == "up" and where.startswith("rule")))
    ok(not foreign, "%s: no selector of another program's metric%s" % (
        where, (": " + ", ".join(foreign)) if foreign else ""))
    for name, matchers in _SELECTOR.findall(expr):
        if name not in labels_of:
            continue
        bad = sorted(set(_MATCHER.findall(matchers)) - labels_of[name] -
                     TARGET_LABELS)
        ok(not bad, "%s: %s has the labels it is matched on%s" % (
            where, name, (": not " + ", ".join(bad)) if bad else ""))
ok("photosync_master_calls_total" in used and
   "photosync_syncs_total" in used and "photosync_store_up" in used,
   "the rules and the dashboard use the portal's calls to the master, its "
   "syncs and the store's state")
m.stop()
p.stop()
done()
