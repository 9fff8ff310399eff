"""Checks made on the sources, without running anything (TAP).

    static_checks.py SOURCE_ROOT

- Every log event the code can write (the event name given to log_err,
  log_warn, log_info, log_debug, log_at or log_event, to the wrappers
  that pass a name on, or written by hand as `ev=NAME`) is a row of the
  events table in docs/logging.md, at a level the row names; and every
  row is an event the code writes.
- Every metric the code exports (a "photosync_..." name in src/) is named
  in docs/, and every metric docs/ names is one the code exports.
- No test names a fixed path under /tmp: tests make their files in the
  temporary directory they are given (TMPDIR, see tests/tmpguard.py), so
  that what they leave is seen.
- Every fuzz target (tests/fuzz/*.c but the replaying main) is registered
  in tests/fuzz/meson.build and in the Makefile's FUZZ_TARGETS, has a
  seed corpus and a dictionary, and a row in docs/testing.md's table.
"""
import os
import re
import sys

from tap import finish, ok


LEVELS = {"err": "err", "warn": "warn", "info": "info", "debug": "debug"}
# Calls that take an event name: function -> (index of the name among the
# arguments, index of the level argument or the level itself).
LOG_CALLS = {
    "log_err": (1, "err"), "log_warn": (1, "warn"),
    "log_info": (1, "info"), "log_debug": (1, "debug"),
    "log_at": (2, 0), "log_event": (2, 0),
}
# Functions of the code that receive an event name as a parameter named
# `ev` and log it: the same (name index, level). A new one must be added
# here (the check below finds them).
WRAPPERS = {
    "line_format": (3, 1),        # common/log.c: log.dropped
    "conn_too_slow": (1, "info"),  # http/conn.c: the 408s
}
# Where a non-literal `ev` is expected: the logging functions themselves.
PLUMBING = {"log_event", "line_vformat"}


def c_sources(root):
    for d, _, files in os.walk(root):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                yield os.path.join(d, f)


def strip_comments(s):
    """The C text with comments blanked (string literals kept)."""
    out, i, n = [], 0, len(s)
    while i < n:
        if s.startswith("/*", i):
            j = s.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", s[i:j]))
            i = j
        elif s[i] == '"' or s[i] == "'":
            q, j = s[i], i + 1
            while j < n and s[j] != q:
                j += 2 if s[j] == "\\" else 1
            out.append(s[i:j + 1])
            i = j + 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def call_args(s, start):
    """The top-level arguments of the call whose '(' ends at start."""
    args, cur, depth, i = [], [], 1, start
    while i < len(s) and depth:
        c = s[i]
        if c == '"':
            j = i + 1
            while s[j] != '"':
                j += 2 if s[j] == "\\" else 1
            cur.append(s[i:j + 1])
            i = j + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                break
        if c == "," and depth == 1:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    args.append("".join(cur).strip())
    return args


def levels_of(spec, args):
    """The levels a call can write at: [None] when the level is a
    variable."""
    if isinstance(spec, str):
        return [spec]
    found = re.findall(r"\bLOG_(ERR|WARN|INFO|DEBUG)\b", args[spec])
    return [f.lower() for f in found] or [None]


def code_events(src):
    """({event: {(level or None, where)}}, [problems])."""
    events, problems = {}, []
    calls = dict(LOG_CALLS, **WRAPPERS)
    call_re = re.compile(r"\b(%s)\s*\(" % "|".join(calls))
    for path in c_sources(src):
        text = strip_comments(open(path, encoding="utf-8").read())
        # functions that take an event name and are not known wrappers
        for m in re.finditer(r"^(\w+)\s*\(([^)]*\bconst char \*ev\b[^)]*)\)"
                             r"\s*\{", text, re.M):
            if m.group(1) not in WRAPPERS and m.group(1) not in PLUMBING:
                problems.append("%s: %s() takes an event name: add it to "
                                "WRAPPERS in %s" % (path, m.group(1),
                                                    __file__))
        for m in call_re.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            where = "%s:%d" % (os.path.relpath(path, src), line)
            # the definition or prototype itself
            before = text[text.rfind("\n", 0, m.start()) + 1:m.start()]
            if before.strip() == "" and re.match(
                    r"[^;]*\)\s*\{", text[m.end():m.end() + 400],
                    re.S) and path.endswith(".c") and \
                    text[m.start() - 1:m.start()] == "\n":
                continue
            if before.strip().startswith("#define") or \
                    re.search(r"\b(void|size_t|static)\b", before):
                continue
            idx, lvl = calls[m.group(1)]
            args = call_args(text, m.end())
            if len(args) <= idx:
                continue
            names = re.findall(r'"([^"]*)"', args[idx])
            if not names:
                if args[idx] != "ev":
                    problems.append("%s: an event name that is not a "
                                    "string literal: %s" % (where,
                                                            args[idx]))
                continue
            for name in names:
                for level in levels_of(lvl, args):
                    events.setdefault(name, set()).add((level, where))
        # lines written by hand: "lvl=err ev=process.oom ..."
        for m in re.finditer(r'"([^"\n]*\bev=([a-z0-9_]+\.[a-z0-9_.]+)'
                             r'[^"\n]*)"', text):
            lv = re.search(r"\blvl=(\w+)", m.group(1))
            line = text.count("\n", 0, m.start()) + 1
            events.setdefault(m.group(2), set()).add(
                (lv.group(1) if lv else None,
                 "%s:%d" % (os.path.relpath(path, src), line)))
    return events, problems


def doc_events(path):
    """{event: level cells} from the events tables of docs/logging.md
    (a row may name several events; an event may have a row per role)."""
    rows = {}
    for m in re.finditer(r"^\| (`[a-z0-9_.]+`(?:, `[a-z0-9_.]+`)*) \| "
                         r"([^|]*) \|", open(path, encoding="utf-8").read(),
                         re.M):
        for name in re.findall(r"`([^`]+)`", m.group(1)):
            rows[name] = rows.get(name, "") + " " + m.group(2).strip()
    return rows


def check_events(root):
    events, problems = code_events(os.path.join(root, "src"))
    ok(not problems, "every event name in src/ can be read off the code",
       problems)
    ok(len(events) > 50, "the check finds the code's events (%d)" %
       len(events))
    rows = doc_events(os.path.join(root, "docs", "logging.md"))
    missing = sorted("%s (%s)" % (e, ", ".join(sorted(w for _, w in v)))
                     for e, v in events.items() if e not in rows)
    ok(not missing, "every event the code writes is in docs/logging.md",
       missing)
    stale = sorted(e for e in rows if e not in events)
    ok(not stale, "every event in docs/logging.md is one the code writes",
       stale)
    wrong = []
    for e, uses in sorted(events.items()):
        if e not in rows:
            continue
        cell = set(re.findall(r"\b(err|warn|info|debug)\b", rows[e]))
        for lvl, where in sorted(uses, key=lambda u: u[1]):
            if lvl is not None and lvl not in cell:
                wrong.append("%s is written at %s (%s); docs/logging.md "
                             "says %s" % (e, lvl, where, rows[e]))
    ok(not wrong, "docs/logging.md gives each event the level the code "
       "writes it at", wrong)


def check_metrics(root):
    code = set()
    for path in c_sources(os.path.join(root, "src")):
        code.update(re.findall(r'"(photosync_[a-z_]+)',
                               open(path, encoding="utf-8").read()))
    docs = set()
    ddir = os.path.join(root, "docs")
    for f in sorted(os.listdir(ddir)):
        if f.endswith(".md"):
            docs.update(re.findall(r"\b(photosync_[a-z_]+)",
                                   open(os.path.join(ddir, f),
                                        encoding="utf-8").read()))
    docs.discard("photosync_core")      # the library, not a metric
    ok(len(code) > 20, "the check finds the code's metrics (%d)" %
       len(code))
    ok(not code - docs, "every metric the code exports is in docs/",
       sorted(code - docs))
    ok(not docs - code, "every metric docs/ names is one the code exports",
       sorted(docs - code))


def check_tmp(root):
    fixed = []
    for d, _, files in os.walk(os.path.join(root, "tests")):
        if "corpus" in d.split(os.sep):
            continue
        for f in sorted(files):
            if not f.endswith((".c", ".h", ".py", ".sh")):
                continue
            path = os.path.join(d, f)
            if os.path.samefile(path, __file__):
                continue
            for n, line in enumerate(open(path, encoding="utf-8"), 1):
                if re.search(r"[\"']/tmp\b", line):
                    fixed.append("%s:%d: %s" % (
                        os.path.relpath(path, root), n, line.strip()))
    ok(not fixed, "no test writes to a fixed path under /tmp (use TMPDIR)",
       fixed)


def check_fuzz(root):
    fuzz = os.path.join(root, "tests", "fuzz")
    sources = {f[:-2] for f in os.listdir(fuzz)
               if f.endswith(".c") and f != "standalone_main.c"}
    m = re.search(r"fuzz_targets\s*=\s*\[([^\]]*)\]",
                  open(os.path.join(fuzz, "meson.build")).read())
    registered = set(re.findall(r"'(\w+)'", m.group(1))) if m else set()
    m = re.search(r"^FUZZ_TARGETS \?= ((?:.*\\\n)*.*)$",
                  open(os.path.join(root, "Makefile")).read(), re.M)
    made = set(m.group(1).replace("\\", " ").split()) if m else set()
    doc = os.path.join(root, "docs", "testing.md")
    text = open(doc).read() if os.path.exists(doc) else ""
    text = text[text.find("\n## Fuzzing"):]
    text = text[:text.find("\n### ")]
    rows = set(re.findall(r"^\| `(\w+)` \|", text, re.M))
    corpus = {t for t in sources
              if os.path.isdir(os.path.join(fuzz, "corpus", t))
              and os.listdir(os.path.join(fuzz, "corpus", t))}
    dicts = {t for t in sources
             if os.path.exists(os.path.join(fuzz, t + ".dict"))}
    for what, have in (("in tests/fuzz/meson.build", registered),
                       ("in the Makefile's FUZZ_TARGETS", made),
                       ("with a seed corpus", corpus),
                       ("with a dictionary", dicts),
                       ("in docs/testing.md's table", rows)):
        ok(have == sources, "every fuzz target is " + what,
           sorted(sources ^ have))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "..")
    check_events(root)
    check_metrics(root)
    check_tmp(root)
    check_fuzz(root)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
