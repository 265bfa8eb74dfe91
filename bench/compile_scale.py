#!/usr/bin/env python3
"""Compile time and peak memory against module size, for the paper's models.

Compiles each preset with random weights (vmoe-compile streams them into the
module one tensor at a time), measures the wall time and the peak resident
memory (the child's ru_maxrss), checks the peak against the bound of issue
#18 (2 GB + twice the largest single float32 tensor), then loads the module
(with and without the weight digests' check) and runs one image at batch 1,
measuring time and peak resident memory. Modules are deleted after their
row unless --keep is given. With --update-docs, rewrites the table in
docs/scale.md between its markers.

  /usr/bin/python3 bench/compile_scale.py --models vmoe-s32-e32-every2
  /usr/bin/python3 bench/compile_scale.py --update-docs
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODELS = ["vmoe-s32-e32-every2", "vmoe-b16-e32-every2",
                  "vmoe-l16-e32-every2", "vmoe-h14-e32-every2", "vmoe-15b"]
BEGIN, END = "<!-- compile_scale begin -->", "<!-- compile_scale end -->"


def run_measured(cmd):
    """Like measure, with the child's own peak RSS from wait4."""
    start = time.monotonic()
    with open(os.devnull, "w") as devnull:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=devnull,
                                text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, seconds, usage.ru_maxrss * 1024, out


def largest_tensor_bytes(config):
    # vmoe's layout ("encoder": {"mlp_dim", "moe", ...}) or the older one
    # with a "transformer" section.
    encoder = config.get("encoder", {})
    d = config["hidden_size"]
    m = config.get("transformer", {}).get("mlp_dim", encoder.get("mlp_dim"))
    moe = encoder["moe"]
    e = moe["num_experts"] if moe["layers"] else 1
    p, c = config["patch_size"], config.get("channels", 3)
    tokens = (config["image_size"][0] // p) * (config["image_size"][1] // p) + 1
    sizes = [e * d * m, d * m, p * p * c * d, tokens * d,
             d * config["num_classes"]]
    return 4 * max(sizes)


def gb(n):
    return "%.2f GB" % (n / 1e9)


def row(args, preset):
    compile_bin = os.path.join(args.build, "bin", "vmoe-compile")
    run_bin = os.path.join(args.build, "bin", "vmoe-run")
    config = json.loads(subprocess.check_output(
        [compile_bin, "--preset", preset, "--batch", "1", "--emit=config"],
        text=True))
    largest = largest_tensor_bytes(config)
    path = os.path.join(args.out_dir, preset + ".vmoe")
    cmd = [compile_bin, "--preset", preset, "--random-weights=1", "--batch",
           "1", "--quiet", "-o", path]
    rc, seconds, rss, out = run_measured(cmd)
    result = {"preset": preset, "largest": largest, "compile_s": seconds,
              "compile_rss": rss, "ok": rc == 0}
    if rc != 0:
        result["error"] = "vmoe-compile exited %d" % rc
        return result
    match = re.search(r"wrote .*: (\d+) bytes", out)
    result["module"] = int(match.group(1)) if match else os.path.getsize(path)
    result["bound"] = 2e9 + 2 * largest
    if not args.no_run:
        # Loading maps the module; --info reads only its metadata beyond the
        # digests' check, which --verify-weights none skips.
        for key, extra in (("load_s", ["--verify-weights", "none"]),
                           ("load_verified_s", [])):
            rc, s, _, _ = run_measured([run_bin, path, "--info"] + extra)
            result[key] = s if rc == 0 else None
        rc, s, rss_run, out = run_measured(
            [run_bin, path, "--verify-weights", "none", "--repeat", "1",
             "--threads", str(args.threads)])
        result["run_s"] = s if rc == 0 else None
        result["run_rss"] = rss_run if rc == 0 else None
        m = re.search(r"([0-9.]+) ms per image", out)
        result["ms_per_image"] = float(m.group(1)) if m else None
    if not args.keep:
        os.remove(path)
    return result


def table(rows):
    lines = ["| model | module | largest tensor | compile | peak RSS | "
             "bound (2 GB + 2x largest) | load (no digests / digests) | "
             "batch 1: one image, peak RSS |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r["ok"]:
            lines.append("| %s | - | %s | failed after %.0f s (%s) | %s | | | |"
                         % (r["preset"], gb(r["largest"]), r["compile_s"],
                            r.get("error", ""), gb(r["compile_rss"])))
            continue
        within = "yes" if r["compile_rss"] <= r["bound"] else "**no**"
        load = "-"
        if r.get("load_s") is not None:
            load = "%.0f ms / %.0f ms" % (1e3 * r["load_s"],
                                          1e3 * (r["load_verified_s"] or 0))
        run = "-"
        if r.get("run_rss") is not None:
            run = "%.0f ms, %s" % (r["ms_per_image"] or 0, gb(r["run_rss"]))
        lines.append("| %s | %s | %s | %.0f s | %s | %s (%s) | %s | %s |" % (
            r["preset"], gb(r["module"]), gb(r["largest"]), r["compile_s"],
            gb(r["compile_rss"]), gb(r["bound"]), within, load, run))
    return "\n".join(lines)


def update_docs(rows):
    doc = os.path.join(ROOT, "docs", "scale.md")
    with open(doc) as f:
        content = f.read()
    begin, end = content.index(BEGIN), content.index(END)
    host = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [l.split(":", 1)[1].strip() for l in f
                     if l.startswith("model name")]
        host = names[0] if names else host
    except OSError:
        pass
    host = "%s, %d cores, %.0f GB of memory" % (
        host, os.cpu_count() or 1,
        os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9)
    content = (content[:begin] + BEGIN + "\n\n" + table(rows) + "\n\n(" +
               host + ")\n\n" + content[end:])
    with open(doc, "w") as f:
        f.write(content)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--out-dir", default=None,
                        help="where modules are written (default: "
                             "BUILD/scale)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated presets")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-run", action="store_true",
                        help="compile only; do not load and run")
    parser.add_argument("--keep", action="store_true",
                        help="keep the modules")
    parser.add_argument("--update-docs", action="store_true",
                        help="rewrite the table in docs/scale.md")
    parser.add_argument("--json", help="also write the rows as JSON here")
    parser.add_argument("--from-json",
                        help="make the table from rows saved with --json "
                             "(or printed one per line) instead of measuring")
    args = parser.parse_args()
    args.out_dir = args.out_dir or os.path.join(args.build, "scale")
    os.makedirs(args.out_dir, exist_ok=True)
    rows = []
    if args.from_json:
        with open(args.from_json) as f:
            text = f.read().strip()
        rows = (json.loads(text) if text.startswith("[") else
                [json.loads(l) for l in text.splitlines()
                 if l.startswith("{")])
        print(table(rows))
        if args.update_docs:
            update_docs(rows)
        return 0
    for preset in args.models.split(","):
        r = row(args, preset)
        rows.append(r)
        print(json.dumps(r), flush=True)
    text = table(rows)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    if args.update_docs:
        update_docs(rows)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
