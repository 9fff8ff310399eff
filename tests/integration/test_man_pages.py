"""The manual pages say what `--help` says: every option the program's,
each role's and each command's help prints is in the corresponding manual
page (the command's own entry, for a command), and every option a page or
an entry names is in that help. The pages are the built ones, rendered
by mandoc as a reader sees them, and mandoc's lint finds nothing in them
at warning level."""
import os
import re
import subprocess

from psync import done, help_commands, is_eq, ok, run

MAN_DIR = os.environ["PHOTOSYNC_MAN_DIR"]

# A long option as help and pages spell it: --dir, --photo-error-expiration;
# not a piece of a word, nor the dashes of a line of them.
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
# The settings that a command taking [SETTINGS] has (portal webapp).
SETTINGS_SECTION = "WEB APPLICATION SETTINGS"


def options(text):
    return set(OPTION.findall(text))


def render(page):
    """The page as text, each paragraph on one line (no line is broken in
    an option or a command's synopsis), without the header and footer."""
    p = subprocess.run(["mandoc", "-T", "ascii", "-O", "width=1000",
                        os.path.join(MAN_DIR, page)],
                       capture_output=True, text=True, check=True)
    text = re.sub(r".\x08", "", p.stdout)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines[1:-1]


def sections(lines):
    """{section name: its lines}; headings start at the left margin."""
    found, name = {}, None
    for line in lines:
        if line and not line[0].isspace():
            name = line.strip()
            found[name] = []
        elif name:
            found[name].append(line)
    return found


def command_entries(section):
    """{(command, verb): the entry's lines} of a COMMANDS section: an
    entry is its synopsis, at the margin of the section's text, and what
    is indented under it, up to the next entry or subsection."""
    entries, current = {}, None
    for line in section:
        indent = len(line) - len(line.lstrip(" "))
        if line.strip() and indent == 7:
            words = []
            for w in line.split():
                if not re.fullmatch(r"[a-z]+", w) or len(words) == 2:
                    break
                words.append(w)
            current = tuple(words)
            ok(current not in entries, "one entry for %s" % " ".join(current))
            entries[current] = [line]
        elif line.strip() and indent < 7:
            current = None
        elif current:
            entries[current].append(line)
    return entries


def differences(help_text, man_text):
    """The options of a help that a page's text lacks, and the other way
    round."""
    in_help, in_man = options(help_text), options(man_text)
    return in_help - in_man, in_man - in_help


def same_options(help_text, man_text, what):
    only_help, only_man = differences(help_text, man_text)
    ok(not only_help, "%s: every option of --help is in the manual page "
       "(missing: %s)" % (what, " ".join(sorted(only_help)) or "none"))
    ok(not only_man, "%s: every option of the manual page is in --help "
       "(not in --help: %s)" % (what, " ".join(sorted(only_man)) or "none"))


def lint(page):
    p = subprocess.run(["mandoc", "-T", "lint", "-W", "warning",
                        os.path.join(MAN_DIR, page)],
                       capture_output=True, text=True)
    is_eq((p.returncode, p.stdout + p.stderr), (0, ""),
          "%s: mandoc -T lint -W warning finds nothing" % page)


PAGES = (("photosync.1", ()), ("photosync-demo.1", ("demo",)),
         ("photosync-master.8", ("master",)),
         ("photosync-portal.8", ("portal",)))

# The comparison sees an option in one of the two only (a page and a help
# that differ by one option), whichever it is in.
st, demo_help, err = run("demo", "--help")
demo_page = "\n".join(render("photosync-demo.1"))
is_eq(differences(demo_help + " --extra-option", demo_page),
      ({"--extra-option"}, set()), "an option added to the help only is found")
is_eq(differences(demo_help, demo_page + " --extra-option"),
      (set(), {"--extra-option"}), "an option added to the page only is found")

for page, role in PAGES:
    lint(page)
    lines = render(page)
    st, role_help, err = run(*role, "--help")
    is_eq(st, 0, "photosync %s --help: exit status 0" % " ".join(role))
    # A help and a page that both lost their text would agree: the help
    # names options, so the page must too.
    ok(len(options(role_help)) >= (2 if not role else 6),
       "%s: --help names its options (%d)" % (page,
                                              len(options(role_help))))
    same_options(role_help, "\n".join(lines), page)
    if role not in (("master",), ("portal",)):
        continue
    parts = sections(lines)
    entries = command_entries(parts.get("COMMANDS", []))
    listed = help_commands(role_help)
    is_eq(sorted(entries), sorted(listed),
          "%s: an entry for each command of --help, and no other" % page)
    settings = "\n".join(parts.get(SETTINGS_SECTION, []))
    for cmd in listed:
        if cmd not in entries:
            continue
        st, cmd_help, err = run(*role, *cmd, "--help")
        entry = "\n".join(entries[cmd])
        if re.search(r"\bSETTINGS\b", entry):
            entry += "\n" + settings
        same_options(cmd_help, entry, "%s %s" % (role[0], " ".join(cmd)))
done()
