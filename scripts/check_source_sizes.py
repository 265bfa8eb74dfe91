#!/usr/bin/python3
"""Checks the size rule of the sources: no file over 800 lines and no
function over 150 lines (lambdas and local classes count toward their
enclosing function). Standard library only.

  check_source_sizes.py [options] [PATH...]

PATHs are files or folders (default: compiler, dialects, targets, runtime and
tools of the repository this script sits in). Folders are searched for *.cpp,
*.h, *.c and *.td files; build folders, hidden folders and generated files
(named *_generated.h, or saying "do not edit"/"do not modify" at the top) are
left out. Each file or function over its limit is printed as
PATH:LINE: ... with its length (a file at its first line past the limit, a
function at its first line); the exit status is 1 when there is one, 2 when
a file cannot be scanned (braces that do not match).

A function is measured from the first line of its definition (template
header and signature included, comments above it not) to its closing brace.
The scanner does not go by indentation: it drops comments, string contents
and the #else branches that would unbalance braces, then matches braces and
classifies the declaration before each '{', so that namespaces, classes,
enums, initializer lists and tables are never taken for functions, and
signatures may span any number of lines. In .td files only the file length
and the C++ in code blocks ([{ ... }]) other than prose (description,
summary, assemblyFormat) count.
"""
import argparse
import bisect
import os
import re
import sys

DEFAULT_FOLDERS = ("compiler", "dialects", "targets", "runtime", "tools")
SOURCE_SUFFIXES = (".cpp", ".h", ".c", ".td")
GENERATED_MARKERS = ("do not edit", "do not modify")


class ScanError(Exception):
    def __init__(self, line, message):
        super().__init__(message)
        self.line = line


# ---- lexing: comments, literals, preprocessor -------------------------------


def strip_code(text):
    """Returns (code, directives): the text with comments blanked and string
    and character literal contents replaced by spaces (newlines and columns
    kept), and {line index: directive text} of the preprocessor lines, which
    are blanked too."""
    out = []
    directives = {}
    i, n = 0, len(text)
    line = 0
    at_line_start = True
    while i < n:
        c = text[i]
        if c == "\n":
            out.append(c)
            line += 1
            at_line_start = True
            i += 1
            continue
        if at_line_start and c == "#":
            # A directive runs to the end of the line, continued by '\'.
            j = i
            while j < n and not (text[j] == "\n" and text[j - 1] != "\\"):
                j += 1
            chunk = text[i:j]
            directives[line] = chunk
            out.append(re.sub(r"[^\n]", " ", chunk))
            line += chunk.count("\n")
            i = j
            continue
        if not c.isspace():
            at_line_start = False
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            chunk = text[i:j]
            out.append(re.sub(r"[^\n]", " ", chunk))
            line += chunk.count("\n")
            i = j
        elif c == "R" and text.startswith('R"', i) and (
                i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")
                or text[i - 1] in "uUL8"):
            m = re.match(r'R"([^()\\\s]{0,16})\(', text[i:i + 20])
            if not m:
                out.append(c)
                i += 1
                continue
            end = text.find(")" + m.group(1) + '"', i)
            j = n if end < 0 else end + len(m.group(1)) + 2
            chunk = text[i:j]
            out.append('"' + re.sub(r"[^\n]", " ", chunk[1:-1]) + '"')
            line += chunk.count("\n")
            i = j
        elif c == '"' or (c == "'" and not _digit_separator(text, i)):
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j, n - 1)
            out.append(c + " " * (j - i - 1) + text[j])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out), directives


def _digit_separator(text, i):
    """Whether the quote at i separates digits (1'000'000)."""
    if i == 0 or i + 1 >= len(text) or not text[i + 1].isalnum():
        return False
    j = i - 1
    while j >= 0 and (text[j].isalnum() or text[j] in "_'."):
        j -= 1
    return text[j + 1].isdigit()


def resolve_conditionals(code, directives):
    """Blanks the #elif/#else branches of a conditional whose branches do not
    each balance their braces (two versions of one signature, say), so that
    the braces of the first branch stand alone. Balanced branches all stay:
    a function defined in an #else branch is measured too."""
    lines = code.split("\n")

    def kind(index):
        d = directives.get(index)
        if d is None:
            return None
        m = re.match(r"#\s*(\w+)", d)
        return m.group(1) if m else None

    def parse(i, depth):
        """Items of lines from i up to an #elif/#else/#endif (returned)."""
        items = []
        while i < len(lines):
            k = kind(i)
            if k in ("if", "ifdef", "ifndef"):
                branches = []
                branch, i = parse(i + 1, depth + 1)
                branches.append(branch)
                while i < len(lines) and kind(i) in ("elif", "else"):
                    branch, i = parse(i + 1, depth + 1)
                    branches.append(branch)
                items.append(("group", branches))
                i += 1  # the #endif
            elif k in ("elif", "else", "endif") and depth > 0:
                return items, i
            else:
                items.append(("line", i))
                i += 1
        return items, i

    def balance(items):
        low = total = 0
        for item in items:
            if item[0] == "line":
                for ch in lines[item[1]]:
                    total += ch == "{"
                    total -= ch == "}"
                    low = min(low, total)
            else:
                t, l = balance(item[1][0])
                low = min(low, total + l)
                total += t
        return total, low

    def blank(items):
        for item in items:
            if item[0] == "line":
                lines[item[1]] = " " * len(lines[item[1]])
            else:
                for branch in item[1]:
                    blank(branch)

    def resolve(items):
        for item in items:
            if item[0] != "group":
                continue
            branches = item[1]
            for branch in branches:
                resolve(branch)
            if len(branches) > 1 and any(
                    balance(b) != (0, 0) for b in branches):
                for branch in branches[1:]:
                    blank(branch)
                item[1][1:] = []

    items, _ = parse(0, 0)
    resolve(items)
    return "\n".join(lines)


# ---- structure: which braces open a function body ---------------------------

NAMESPACE_RE = re.compile(
    r"(^|\s)((inline\s+)?namespace(\s+[\w:]+)?|extern\s*\"\s*\")$")
CLASS_RE = re.compile(r"\b(class|struct|union)\b")
ENUM_RE = re.compile(r"\benum\b")
ACCESS_RE = re.compile(r"^(public|private|protected)\s*$")
CATCH_RE = re.compile(r"\s*catch\s*\(")
IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _normalize(head):
    """A declaration head with attributes, template headers and operator
    names simplified: what the classification below looks at."""
    h = " ".join(head.split())
    h = re.sub(r"\[\[.*?\]\]", " ", h)
    h = re.sub(r"\b(alignas|__attribute__|__declspec)\s*"
               r"(\((?:[^()]|\([^()]*\))*\))", " ", h)
    # Operator names (`operator()`, `operator==`, `operator<`) become
    # identifiers, their symbol in hex: no brackets or '=' to misread.
    h = re.sub(r"\boperator\s*(\(\s*\)|\[\s*\]|->\*?|[^\s\w(]+)",
               lambda m: "operator_" + "".join(
                   "%02X" % ord(ch) for ch in m.group(1) if not ch.isspace()),
               h)
    h = h.strip()
    while h.startswith("template"):
        rest = _skip_angles(h, len("template"))
        if rest is None:
            break
        h = h[rest:].strip()
    return h


def _skip_angles(h, i):
    """Index after the <...> starting at the first non-space from i."""
    while i < len(h) and h[i].isspace():
        i += 1
    if i >= len(h) or h[i] != "<":
        return None
    depth = 0
    while i < len(h):
        c = h[i]
        if c in "<(":
            depth += 1
        elif c in ">)":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _top_level(h):
    """(index, char) of the characters of h not inside (), [], {} or a
    template argument list; opening brackets included."""
    out = []
    paren = angle = 0
    prev = ""
    for i, c in enumerate(h):
        if paren == 0 and angle == 0:
            out.append((i, c))
        if c in "([{":
            paren += 1
        elif c in ")]}":
            paren -= 1
        elif paren == 0 and c == "<" and (prev.isalnum() or prev in "_>"):
            angle += 1
        elif paren == 0 and c == ">" and angle > 0 and prev != "-":
            angle -= 1
        if not c.isspace():
            prev = c
    return out


def classify(head):
    """'container' (namespace, class body: scanned for functions),
    'function', or 'other' (enum, initializer, table)."""
    h = _normalize(head)
    if NAMESPACE_RE.search(h):
        return "container"
    top = _top_level(h)
    text = "".join(c if (i, c) in top else " " for i, c in enumerate(h))
    # The last class or enum keyword with no parameter list after it (a
    # function may return `struct Foo *`).
    for regex, kind in ((CLASS_RE, "container"), (ENUM_RE, "other")):
        keywords = list(regex.finditer(text))
        if keywords and "(" not in text[keywords[-1].end():]:
            return kind
    for i, c in top:
        if c == "=":
            rest = h[i + 1:].lstrip()
            # A lambda at namespace scope is a function of its own.
            return "function" if rest.startswith("[") else "other"
    return "function" if "(" in text else "other"


def in_member_initializers(head):
    """Whether a '{' ending this function head initializes a member
    (`Foo() : x{1}`) rather than opening the body (`Foo() : x(1) {`)."""
    h = _normalize(head)
    opens = [i for i, c in _top_level(h) if c == "("]
    if not opens:
        return False
    # After the parameter list, a lone ':' starts the member initializers.
    depth = 0
    i = opens[0]
    while i < len(h):
        depth += h[i] == "("
        depth -= h[i] == ")"
        if depth == 0:
            break
        i += 1
    rest = h[i + 1:]
    if not re.search(r"(?<!:):(?!:)", rest):
        return False
    last = rest.rstrip()[-1:] if rest.strip() else ""
    return last.isalnum() or last in "_>"


def function_name(head):
    """The (qualified) name a function head defines, for the report."""
    h = _normalize(head)
    for i, c in _top_level(h):
        if c == "=":
            names = IDENT_RE.findall(h[:i])
            return (names[-1] if names else "") + " (lambda)"
    opens = [i for i, c in _top_level(h) if c == "("]
    before = h[:opens[0]].rstrip() if opens else h
    m = re.search(r"~?[A-Za-z_]\w*(\s*<[^()]*>)?(\s*::\s*~?[A-Za-z_]\w*)*$",
                  before)
    name = m.group(0) if m else "?"
    return re.sub(r"operator_([0-9A-F]*)",
                  lambda m: "operator" + bytes.fromhex(m.group(1)).decode(),
                  name)


class Scanner:
    def __init__(self, code):
        self.code = code
        self.n = len(code)
        self.newlines = [i for i, c in enumerate(code) if c == "\n"]
        self.functions = []  # (start line, end line, name), 1-based

    def line_of(self, pos):
        return bisect.bisect_right(self.newlines, pos - 1) + 1

    def match_brace(self, pos):
        """Position of the '}' closing the '{' at pos."""
        depth = 0
        for i in range(pos, self.n):
            c = self.code[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return i
        raise ScanError(self.line_of(pos), "the '{' here is never closed")

    def scan_scope(self, pos, opening=None):
        """Scans declarations from pos to the '}' closing the '{' at opening
        (returned), or to the end of the file at the top (opening None)."""
        head_start = pos
        paren = 0
        while pos < self.n:
            c = self.code[pos]
            if c in "([":
                paren += 1
            elif c in ")]":
                paren -= 1
            elif c == ";" and paren <= 0:
                head_start, paren = pos + 1, 0
            elif c == ":" and paren == 0 and ACCESS_RE.match(
                    self.code[head_start:pos].strip()) and \
                    self.code[pos + 1:pos + 2] != ":":
                head_start = pos + 1
            elif c == "}":
                if opening is None:
                    raise ScanError(self.line_of(pos),
                                    "this '}' closes nothing")
                return pos
            elif c == "{":
                head = self.code[head_start:pos]
                if paren > 0:
                    # A braced value inside parentheses (default argument).
                    pos = self.match_brace(pos) + 1
                    continue
                kind = classify(head)
                if kind == "container":
                    pos = self.scan_scope(pos + 1, pos) + 1
                    head_start = pos
                    continue
                if kind == "function" and not in_member_initializers(head):
                    end = self.match_brace(pos)
                    # A function-try-block ends with its last handler.
                    while True:
                        m = CATCH_RE.match(self.code, end + 1)
                        if not m:
                            break
                        end = self.match_brace(self.code.index("{", m.end()))
                    offset = len(head) - len(head.lstrip())
                    self.functions.append((self.line_of(head_start + offset),
                                           self.line_of(end),
                                           function_name(head)))
                    pos = end + 1
                    head_start = pos
                    continue
                # Enum, initializer, table, member initializer: skipped; the
                # declaration goes on to its ';' (or the function body).
                pos = self.match_brace(pos) + 1
                continue
            pos += 1
        if opening is not None:
            raise ScanError(self.line_of(opening),
                            "the '{' here is never closed")
        return pos


def scan_cpp(text):
    code, directives = strip_code(text)
    code = resolve_conditionals(code, directives)
    scanner = Scanner(code)
    scanner.scan_scope(0)
    return scanner.functions


TD_BLOCK_RE = re.compile(r"\[\{(.*?)\}\]", re.S)
TD_PROSE_RE = re.compile(r"\b(description|summary|assemblyFormat)\s*=\s*$")
TD_CLASS_RE = re.compile(r"\bextra\w*Class\w*\s*=\s*$")


def scan_td(text):
    """The C++ in TableGen code blocks: class members (extraClass*) as a
    class body, other code (builders, interface method bodies) as one
    function each; prose blocks are not code."""
    functions = []
    for m in TD_BLOCK_RE.finditer(text):
        before = text[:m.start()]
        first_line = before.count("\n") + 1
        # The block's text at its own line and column: lines as in the file.
        column = m.start(1) - before.rfind("\n") - 1
        body = "\n" * (first_line - 1) + " " * column + m.group(1)
        if TD_PROSE_RE.search(before):
            continue
        if TD_CLASS_RE.search(before):
            functions += scan_cpp(body)
        else:
            last = first_line + m.group(0).count("\n")
            functions.append((first_line, last, "(code block)"))
    return functions


# ---- the check --------------------------------------------------------------


def is_generated(path, text):
    if path.endswith("_generated.h"):
        return True
    top = "\n".join(text.split("\n")[:5]).lower()
    return any(marker in top for marker in GENERATED_MARKERS)


def source_files(paths):
    for path in paths:
        if os.path.isfile(path):
            yield path
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs
                             if not d.startswith((".", "build")))
            for f in sorted(files):
                if f.endswith(SOURCE_SUFFIXES):
                    yield os.path.join(folder, f)


def check_file(path, max_file, max_function):
    """(problems, functions) of path: the report lines of what is over the
    limits, and every function as (length, start line, name)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if is_generated(path, text):
        return [], []
    problems = []
    lines = len(text.splitlines())
    if lines > max_file:
        problems.append("%s:%d: file is %d lines (limit %d)" %
                        (path, max_file + 1, lines, max_file))
    found = scan_td(text) if path.endswith(".td") else scan_cpp(text)
    functions = [(end - start + 1, start, name) for start, end, name in found]
    for length, start, name in functions:
        if length > max_function:
            problems.append("%s:%d: function %s is %d lines (limit %d)" %
                            (path, start, name, length, max_function))
    return problems, functions


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="files or folders (default: %s)" %
                        ", ".join(DEFAULT_FOLDERS))
    parser.add_argument("--max-file-lines", type=int, default=800)
    parser.add_argument("--max-function-lines", type=int, default=150)
    parser.add_argument("--list", type=int, metavar="N",
                        help="also list every function of N lines or more, "
                        "longest first")
    args = parser.parse_args(argv)
    paths = args.paths
    if not paths:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        paths = [os.path.relpath(os.path.join(root, d))
                 for d in DEFAULT_FOLDERS]

    files = problems = errors = 0
    listed = []
    for path in source_files(paths):
        files += 1
        try:
            found, functions = check_file(path, args.max_file_lines,
                                          args.max_function_lines)
        except ScanError as e:
            print("%s:%d: error: cannot scan: %s" % (path, e.line, e))
            errors += 1
            continue
        for line in found:
            print(line)
        problems += len(found)
        if args.list is not None:
            listed += [(length, path, start, name)
                       for length, start, name in functions
                       if length >= args.list]
    for length, path, start, name in sorted(listed,
                                            key=lambda x: (-x[0], x[1:3])):
        print("%6d lines  %s:%d %s" % (length, path, start, name))
    print("%d files checked: %d over the limits, %d not scanned" %
          (files, problems, errors))
    if errors:
        return 2
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
