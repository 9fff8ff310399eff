#!/usr/bin/env python3
"""Builds one manual page: runs scdoc on the page's source, each @NAME@
in it replaced by the VALUE given (the version in the footer, where the
documentation is installed), then mends
its output. It starts paragraphs where man(7) has none to
start (right after a heading, before one, twice in a row, or just before
the end of an indented block, where the break belongs after the end):
they change nothing a reader sees, but mandoc's lint warns about each,
and the pages must lint clean. And it writes the hyphens of command-line
options as plain ASCII minus signs (\\-), which formatters neither turn
into typographic hyphens (an option copied from the page must work) nor
break a line at; nor are words hyphenated (scdoc turns hyphenation off
before .TH, which turns it back on).

usage: scdoc_man.py SCDOC SOURCE OUTPUT [NAME=VALUE...]"""
import re
import subprocess
import sys

HEADINGS = (".SH", ".SS")


def macro(line):
    return line.split(" ", 1)[0] if line.startswith(".") else None


# An option: one or two hyphens, a letter, letters, digits and hyphens;
# not inside a word (ps-sync) nor after a roff escape's backslash, but
# right after a change of font (\fB--dir).
OPTION = re.compile(r"(?:(?<=\\f[BIR])|(?<![\w\\-]))--?[A-Za-z][\w-]*")


def minus_signs(line):
    if line.startswith("."):
        return line
    return OPTION.sub(lambda m: m.group(0).replace("-", "\\-"), line)


def breaks_after_blocks(lines):
    """A paragraph break just before the end of indented blocks goes after
    them."""
    out = []
    i = 0
    while i < len(lines):
        j = i + 1
        while macro(lines[i]) == ".P" and j < len(lines) and \
                macro(lines[j]) == ".RE":
            j += 1
        if j > i + 1:
            out.extend(lines[i + 1:j])
            out.append(lines[i])
            i = j
            continue
        out.append(lines[i])
        i += 1
    return out


def tidy(lines):
    out = []
    lines = breaks_after_blocks(lines)
    for i, line in enumerate(lines):
        if macro(line) == ".P":
            prev = next((macro(l) for l in reversed(out)
                         if not l.startswith('.\\"')), None)
            following = next((macro(l) or "text" for l in lines[i + 1:]
                              if not l.startswith('.\\"')), None)
            if prev in HEADINGS + (".P", ".RS") or \
                    following in HEADINGS + (".P", ".RE", None):
                continue
        out.append(minus_signs(line))
        # .TH turns hyphenation back on: option values and names such
        # as openldap must not be split.
        if macro(line) == ".TH":
            out.append(".nh")
    return out


def main():
    scdoc, source, output = sys.argv[1:4]
    with open(source, encoding="utf-8") as f:
        text = f.read()
    for arg in sys.argv[4:]:
        name, value = arg.split("=", 1)
        text = text.replace("@%s@" % name, value)
    page = subprocess.run([scdoc], input=text.encode(), capture_output=True,
                          check=True).stdout.decode()
    with open(output, "w") as f:
        f.write("\n".join(tidy(page.split("\n"))))


if __name__ == "__main__":
    main()
