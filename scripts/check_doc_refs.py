#!/usr/bin/env python3
"""Checks that every document the repository refers to exists.

  scripts/check_doc_refs.py [ROOT]

Scans the text files of the tree (README, docs, sources, scripts, tests;
not build folders) for three kinds of reference:

  - a path with a `docs/` component ending in a file name with an extension
    (`docs/cuda.md`, `see docs/vmoe-reference.md section 6`,
    `docs/demo/fashion-mnist-sweep.svg`): the part from `docs/` on must
    exist under ROOT, whatever comes before it;
  - a bare Markdown file name (`vmoe-reference.md 8.1`, `architecture.md`):
    it must exist in docs/, beside the file that names it, or at ROOT;
  - a relative link target in a Markdown file (`[x](docs/cuda.md#tests)`): it
    must exist relative to that file.

URLs are ignored, and so are the few names of files that tools write
(GENERATED below), as are SKIP_FILES. Prints each missing reference as FILE:LINE and exits 1 if
there is one. Standard library only; ctest runs it as `doc_references`.
"""

import os
import re
import sys

# Names that appear in the tree as outputs, not as references to documents.
GENERATED = {
    'results.md',  # scripts/gpu-check.sh writes it into its output folder
    'doc.md',  # a temporary file of tests/python/test_run_benchmarks.py
}
# Files whose references point into a tree of their own.
SKIP_FILES = {
    'tests/scripts/test_check_doc_refs.py',  # this script's self-test
}
SKIP_DIRS = {'.git', '.cache', '__pycache__', 'node_modules'}
MAX_BYTES = 2 << 20

URL = re.compile(r'[a-zA-Z][a-zA-Z0-9+.-]*://[^\s)>\]"\'`]+')
DOCS_PATH = re.compile(r'(?<![A-Za-z0-9_.-])(?:[A-Za-z0-9_.-]+/)*'
                       r'(docs/[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.[A-Za-z0-9]+)')
BARE_MD = re.compile(r'(?<![A-Za-z0-9_./-])([A-Za-z0-9_-][A-Za-z0-9_.-]*\.md)'
                     r'(?![A-Za-z0-9_/-])')
MD_LINK = re.compile(r'\]\(([^)\s]+)\)')


def text_files(root):
  for top, dirs, files in os.walk(root):
    dirs[:] = sorted(d for d in dirs
                     if d not in SKIP_DIRS and not d.startswith('build'))
    for name in sorted(files):
      path = os.path.join(top, name)
      try:
        if os.path.islink(path) or os.path.getsize(path) > MAX_BYTES:
          continue
        with open(path, 'rb') as f:
          data = f.read()
      except OSError:
        continue
      if b'\0' in data:
        continue
      try:
        yield path, data.decode('utf-8')
      except UnicodeDecodeError:
        continue


def check(root):
  """Returns the missing references as (file, line, reference, why)."""
  root = os.path.abspath(root)
  missing = []
  for path, text in text_files(root):
    rel = os.path.relpath(path, root)
    if rel.replace(os.sep, '/') in SKIP_FILES:
      continue
    here = os.path.dirname(path)
    is_markdown = path.endswith('.md')
    for number, line in enumerate(text.splitlines(), 1):
      line = URL.sub(' ', line)
      for m in DOCS_PATH.finditer(line):
        target = m.group(1).rstrip('.')
        if not os.path.exists(os.path.join(root, target)):
          missing.append((rel, number, target, 'no such file under the root'))
      for m in BARE_MD.finditer(line):
        name = m.group(1)
        if name in GENERATED:
          continue
        places = [os.path.join(root, 'docs', name), os.path.join(here, name),
                  os.path.join(root, name)]
        if not any(os.path.exists(p) for p in places):
          missing.append((rel, number, name,
                          'not in docs/, beside the file or at the root'))
      if is_markdown:
        for m in MD_LINK.finditer(line):
          target = m.group(1).split('#', 1)[0]
          if not target or ':' in target:
            continue
          if not os.path.exists(os.path.normpath(os.path.join(here, target))):
            missing.append((rel, number, target,
                            'link target missing (relative to the file)'))
  # A Markdown link to a docs/ path is found twice: report it once.
  seen, unique = set(), []
  for item in missing:
    if item[:3] not in seen:
      seen.add(item[:3])
      unique.append(item)
  return unique


def main(argv):
  root = argv[1] if len(argv) > 1 else os.path.join(
      os.path.dirname(os.path.abspath(__file__)), '..')
  missing = check(root)
  for rel, number, target, why in missing:
    print(f'{rel}:{number}: {target}: {why}')
  if missing:
    print(f'{len(missing)} reference(s) to missing documents')
    return 1
  print('every referenced document exists')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
