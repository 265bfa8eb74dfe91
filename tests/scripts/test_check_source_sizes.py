"""Checks of scripts/check_source_sizes.py, the size rule's scanner.

The fixtures in source_sizes/ are checked with a function limit of 10 lines:
pass.cpp holds long blocks that are not functions (namespaces, enums,
tables, classes, member initializers) and short functions in the forms that
trip line-based scanners; fail.cpp holds functions over the limit whose
signatures span lines, that sit in a class body, contain lambdas, or are
lambdas themselves. The scanner must find each function with its exact
first and last line.

Run: python3 tests/scripts/test_check_source_sizes.py (non-zero on failure)
"""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(ROOT, "scripts", "check_source_sizes.py")
FIXTURES = os.path.join(HERE, "source_sizes")
sys.path.insert(0, os.path.dirname(SCRIPT))
import check_source_sizes  # noqa: E402


def run(*args, cwd=None):
    """(exit status, report lines) of the script."""
    p = subprocess.run([sys.executable, SCRIPT] + list(args), cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    lines = [l for l in p.stdout.splitlines() if "files checked" not in l]
    return p.returncode, lines


def functions(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return check_source_sizes.scan_cpp(f.read())


class Fixtures(unittest.TestCase):
    def test_pass_has_nothing_over_the_limit(self):
        rc, lines = run("--max-function-lines", "10",
                        os.path.join(FIXTURES, "pass.cpp"))
        self.assertEqual((rc, lines), (0, []))

    def test_pass_functions_are_found(self):
        self.assertEqual(functions("pass.cpp"), [
            (58, 63, "Widget"),           # member initializers with braces
            (64, 64, "get"),              # digit separators
            (65, 68, "operator="),
            (69, 69, "operator<"),
            (75, 75, "callback (lambda)"),  # a member's default value
            (78, 82, "twice"),            # template header counted
            (85, 90, "pick"),             # two signatures under #if/#else
        ])

    def test_fail_reports_each_long_function(self):
        path = os.path.join(FIXTURES, "fail.cpp")
        rc, lines = run("--max-function-lines", "10", path)
        self.assertEqual(rc, 1)
        self.assertEqual(lines, [
            "%s:15: function spreadOut is 11 lines (limit 10)" % path,
            "%s:29: function sum is 13 lines (limit 10)" % path,
            "%s:56: function Counter is 11 lines (limit 10)" % path,
            "%s:74: function kLong (lambda) is 11 lines (limit 10)" % path,
            "%s:93: function platform is 11 lines (limit 10)" % path,
        ])

    def test_fail_functions_are_found(self):
        self.assertEqual(functions("fail.cpp"), [
            (15, 25, "spreadOut"),
            (29, 41, "sum"),
            (42, 42, "short_"),
            (45, 51, "guarded"),  # a function-try-block ends with its handler
            (56, 66, "Counter"),
            (74, 84, "kLong (lambda)"),
            (90, 90, "platform"),
            (93, 103, "platform"),
        ])

    def test_default_limits_pass_the_fixtures(self):
        rc, lines = run(FIXTURES)
        self.assertEqual((rc, lines), (0, []))


class Files(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.root = self.dir.name

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, text):
        path = os.path.join(self.root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_file_length(self):
        self.write("src/ten.h", "int x;\n" * 10)
        long = self.write("src/eleven.cpp", "int x;\n" * 11)
        rc, lines = run("--max-file-lines", "10",
                        os.path.join(self.root, "src"))
        self.assertEqual(rc, 1)
        self.assertEqual(lines, ["%s:11: file is 11 lines (limit 10)" % long])

    def test_generated_and_build_folders_are_left_out(self):
        body = "void f() {\n" + "  g();\n" * 20 + "}\n"
        self.write("src/build-x/long.cpp", body)
        self.write("src/.cache/long.cpp", body)
        self.write("src/schema_generated.h", body)
        self.write("src/marked.h", "// Automatically generated, do not edit.\n"
                   + body)
        self.write("src/long.inc", body)
        self.write("src/ok.c", "int f(void) { return 0; }\n")
        counted = self.write("src/long.c", body)
        rc, lines = run("--max-function-lines", "10",
                        os.path.join(self.root, "src"))
        self.assertEqual(rc, 1)
        self.assertEqual(lines,
                         ["%s:1: function f is 22 lines (limit 10)" % counted])

    def test_tablegen_code_blocks(self):
        prose = "  let description = [{\n" + "    text {\n" * 20 + "  }];\n"
        method = ("  let extraClassDeclaration = [{\n"
                  "    int count() {\n" + "      ++n;\n" * 12 + "    }\n"
                  "    int n = 0;\n  }];\n")
        path = self.write("Ops.td", "def A : Op<\"a\"> {\n" + prose + method
                          + "}\n")
        rc, lines = run("--max-function-lines", "10", path)
        self.assertEqual(rc, 1)
        self.assertEqual(
            lines, ["%s:25: function count is 14 lines (limit 10)" % path])

    def test_unbalanced_braces_are_an_error(self):
        path = self.write("bad.cpp", "namespace a {\nvoid f() {\n}\n")
        rc, lines = run(path)
        self.assertEqual(rc, 2)
        self.assertEqual(lines, ["%s:1: error: cannot scan: the '{' here is "
                                 "never closed" % path])


if __name__ == "__main__":
    unittest.main()
