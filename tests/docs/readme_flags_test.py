#!/usr/bin/env python3
"""Checks that the README's flags match each tool's --help.

Every flag the README gives a tool exists in that tool's --help:
  - in a command of a code block (`build/bin/TOOL ... --flag`, continued over
    lines ending in a backslash),
  - in a backticked span of the tool's own section (`### TOOL`); a span
    that names a tool before its first flag (`vmoe-run --info`) gives its
    flags to that tool.
And for the tools whose flags the README lists in a table (a `| --flag |` row
under `### TOOL`), every flag of --help is in that table.

  readme_flags_test.py README TOOL=PATH...

Exits 0 when everything matches, 1 with one line per mismatch otherwise.
"""
import re
import subprocess
import sys

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
TOOL_IN_TEXT = re.compile(r"(?:build/bin/|\b)(vmoe-(?:compile|opt|run|bench))\b")


def commands(text):
    """(tool, command text) of every build/bin/TOOL command in code blocks."""
    in_block = False
    pending = ""
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = not in_block
            pending = ""
            continue
        if not in_block:
            continue
        line = pending + line
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        # A pipeline may run several tools: each part is its own command.
        for part in re.split(r"\s[|;]\s|\s&&\s", line):
            m = re.match(r"\s*build/bin/(vmoe-[a-z]+)\b(.*)", part)
            if m:
                yield m.group(1), m.group(2).split("#")[0]


def sections(text):
    """(tool, section text) of each `### TOOL` section."""
    parts = re.split(r"^### ", text, flags=re.M)
    for part in parts[1:]:
        title, _, body = part.partition("\n")
        m = re.fullmatch(r"(vmoe-[a-z]+)\s*", title)
        if m:
            # Up to the next heading of the same or a higher level.
            body = re.split(r"^#{1,3} ", body, flags=re.M)[0]
            yield m.group(1), body


def strip_code_blocks(body):
    return re.sub(r"^```.*?^```", "", body, flags=re.M | re.S)


def prose_flags(tool, body):
    """Flags in backticked spans of a section's prose, with their tool."""
    for span in re.findall(r"`([^`\n]+)`", strip_code_blocks(body)):
        first = FLAG.search(span)
        if not first:
            continue
        named = TOOL_IN_TEXT.search(span)
        owner = named.group(1) if named and named.start() < first.start() \
            else tool
        for flag in FLAG.findall(span):
            yield owner, flag


def table_flags(body):
    """Flags in the first cell of the rows of a table of options
    (`| `--flag VALUE`, `--other` | ... |`)."""
    flags = set()
    for line in strip_code_blocks(body).splitlines():
        if not re.match(r"\|\s*`--", line):
            continue
        first_cell = re.split(r"(?<!\\)\|", line)[1]
        flags.update(FLAG.findall(first_cell))
    return flags


def help_flags(path):
    out = subprocess.run([path, "--help"], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"{path} --help exited with {out.returncode}")
    # The flags that start an option's line; flags named in descriptions
    # ("compiled with --target=cuda") are not the tool's.
    return set(re.findall(r"^\s+(--[a-z][a-z0-9-]*)", out.stdout, re.M))


def main(argv):
    readme = open(argv[1], encoding="utf-8").read()
    tools = dict(arg.split("=", 1) for arg in argv[2:])
    helps = {tool: help_flags(path) for tool, path in tools.items()}
    used = []  # (tool, flag, where)
    for tool, command in commands(readme):
        used += [(tool, f, "a README command") for f in FLAG.findall(command)]
    tables = {}
    for tool, body in sections(readme):
        used += [(t, f, f"the {tool} section") for t, f in prose_flags(tool, body)]
        if table_flags(body):
            tables[tool] = table_flags(body)
    errors = []
    for tool, flag, where in sorted(set(used)):
        if tool in helps and flag not in helps[tool]:
            errors.append(f"{tool} {flag} ({where}) is not in {tool} --help")
    for tool, flags in sorted(tables.items()):
        if tool not in helps:
            continue
        for flag in sorted(helps[tool] - flags):
            errors.append(f"{tool} --help has {flag}; the README's {tool} "
                          "table does not")
        for flag in sorted(flags - helps[tool]):
            errors.append(f"the README's {tool} table has {flag}; "
                          f"{tool} --help does not")
    for tool in tools:
        if not any(t == tool for t, _, _ in used):
            errors.append(f"no flags of {tool} found in the README")
    for error in errors:
        print(error)
    print(f"{len(set(used))} README flags of {len(tools)} tools checked, "
          f"{len(errors)} mismatches")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
