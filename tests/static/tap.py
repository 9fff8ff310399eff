"""TAP output for the checks of tests/static/: numbered results with
details as comments, then the plan and an exit status."""

_count = 0
_failed = 0


def ok(cond, what, detail=()):
    global _count, _failed
    _count += 1
    if not cond:
        _failed += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (_count, what))
    for line in detail:
        print("#   " + line)


def finish():
    """Prints the plan; the exit status for the checks made."""
    print("1..%d" % _count)
    return 1 if _failed else 0
