#!/usr/bin/env python3
"""Self-test of scripts/check_doc_refs.py on a small tree made here.

Each kind of reference once present and once missing; URLs, generated
names and build folders must not count.
"""

import os
import subprocess
import sys
import tempfile

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                      'scripts', 'check_doc_refs.py')


def write(root, rel, text):
  path = os.path.join(root, rel)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    f.write(text)


def run(root):
  return subprocess.run([sys.executable, SCRIPT, root], capture_output=True,
                        text=True)


def main():
  failures = []

  def expect(condition, what, result):
    if not condition:
      failures.append(f'{what}\n--- output:\n{result.stdout}{result.stderr}')

  with tempfile.TemporaryDirectory() as root:
    write(root, 'docs/present.md', 'see [cuda](cuda.md) and building.md\n')
    write(root, 'docs/cuda.md', '# cuda\n')
    write(root, 'docs/building.md', '# building\n')
    write(root, 'docs/img/plot.svg', '<svg/>\n')
    write(root, 'README.md',
          'Read docs/present.md, `docs/img/plot.svg` and present.md.\n'
          'Online: https://example.org/docs/elsewhere.md (a URL).\n'
          'The script writes out/results.md and results.md.\n'
          '[link](docs/cuda.md#section)\n')
    write(root, 'src/a.cpp',
          '// (../shared/docs/building.md section 2) and local.md\n')
    write(root, 'src/local.md', 'beside a.cpp\n')
    write(root, 'build-x/junk.md', 'docs/not-checked.md\n')
    result = run(root)
    expect(result.returncode == 0, 'a complete tree must pass', result)

    write(root, 'README.md',
          'Read docs/gone.md and missing-name.md.\n[x](docs/nolink.md)\n')
    write(root, 'src/b.h', '// see ../shared/docs/also-gone.md.\n')
    result = run(root)
    expect(result.returncode == 1, 'missing documents must fail', result)
    for needle in ['README.md:1: docs/gone.md', 'README.md:1: missing-name.md',
                   'README.md:2: docs/nolink.md',
                   'src/b.h:1: docs/also-gone.md', '4 reference(s)']:
      expect(needle in result.stdout, f'expected {needle!r}', result)

  for f in failures:
    print('FAIL:', f)
  if failures:
    return 1
  print('check_doc_refs self-test passed')
  return 0


if __name__ == '__main__':
  sys.exit(main())
