"""`--help` after any command prints that command's help: for every command
the roles' own help lists (master, portal) and for the demo, the first
usage line names that command, and the exit status is 0; a command's help
is not the whole role's."""
import re

from psync import done, help_commands, is_eq, ok, run


def first_line(text):
    return text.splitlines()[0] if text else ""


def commands(role):
    """The (command, verb) pairs the role's help lists."""
    st, out, err = run(role, "--help")
    return out, help_commands(out)


for role, least in (("master", 14), ("portal", 17)):
    whole, found = commands(role)
    ok(len(found) >= least, "%s --help lists its %d commands (%d found)" % (
        role, least, len(found)))
    for cmd in found:
        name = " ".join(cmd)
        for flag in ("--help", "-h"):
            st, out, err = run(role, *cmd, flag, check=False)
            is_eq(st, 0, "%s %s %s: exit status 0" % (role, name, flag))
            line = first_line(out)
            ok(line.startswith("usage: photosync %s %s " % (role, name)),
               "%s %s %s: the usage line names it (%r)" % (role, name, flag,
                                                           line[:60]))
            ok(out != whole, "%s %s %s: not the whole role's help" % (
                role, name, flag))
    # A command with verbs, without one: each of its verbs.
    group = "partner" if role == "master" else "webapp"
    st, out, err = run(role, group, "--help")
    lines = [l for l in out.splitlines()
             if re.match(r"^(usage:| {6}) photosync %s %s " % (role, group),
                         l)]
    is_eq(len(lines), sum(1 for c in found if c[0] == group),
          "%s %s --help: one usage line per verb" % (role, group))
    st, out, err = run(role, "--help")
    ok(first_line(out).startswith("usage: photosync %s COMMAND" % role),
       "%s --help: the role's help" % role)

# The settings go with the commands that take them.
st, out, err = run("portal", "webapp", "set", "--help")
ok("--photo-import" in out, "portal webapp set --help lists the settings")
st, out, err = run("portal", "user", "add", "--help")
ok("--photo-import" not in out, "portal user add --help does not")

st, out, err = run("demo", "--help")
ok(first_line(out).startswith("usage: photosync demo "),
   "demo --help: the demo's usage line")
st, out, err = run("--help")
ok(first_line(out).startswith("usage: photosync ROLE"),
   "photosync --help: the program's usage line")
done()
