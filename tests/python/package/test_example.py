"""examples/python/classify.py as a user runs it: it classifies the bundled
samples and writes the capacity sweep, whose numbers agree with the PyTorch
implementation's golden logits."""
import csv
import os
import subprocess
import sys

from conftest import SOURCE_DIR

EXAMPLE = SOURCE_DIR / "examples" / "python" / "classify.py"


def accuracy(logits, labels):
    return float((logits.argmax(axis=1) == labels).mean())


def test_classify_example(tmp_path, samples):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--out", str(out), "--threads", "2",
         "--show", "3", "--capacity-factors", "2.0,1.05,0.5,0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    labels = samples["labels"]
    # Compiled (batch 8, as scripts/demo.sh does) and classified: the top
    # class of the golden logits at the default capacity factor.
    assert (out / "fashion-mnist.vmoe").is_file()
    assert "image 0: Ankle boot" in proc.stdout
    golden = accuracy(samples["logits"], labels)
    correct = round(golden * len(labels))
    assert f"accuracy: {correct} of {len(labels)} (" in proc.stdout

    with open(out / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["capacity_factor"], r["bpr"]) for r in rows] == [
        (cf, bpr) for cf in ["2.0", "1.05", "0.5", "0.1"]
        for bpr in ["on", "off"]]
    table = {(r["capacity_factor"], r["bpr"]): r for r in rows}
    assert float(table["2.0", "on"]["assignments_kept_share"]) == 1.0
    assert float(table["0.1", "on"]["assignments_kept_share"]) < 0.2
    for key, golden_key in [(("0.5", "on"), "logits_cf0_5_bpr"),
                            (("0.5", "off"), "logits_cf0_5_vanilla"),
                            (("1.05", "off"), "logits")]:
        want = accuracy(samples[golden_key], labels)
        assert abs(float(table[key]["accuracy"]) - want) < 1e-6, key
    svg = (out / "sweep.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 2
    assert svg.count("<circle") == len(rows)
