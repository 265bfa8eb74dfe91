"""Splits the IR dumps of --mlir-print-ir-after-all (with
--mlir-print-ir-module-scope) into one file per dump: DIR/NN.mlir. Prints
how many it wrote."""
import os
import sys

dumps, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
parts, current = [], None
with open(dumps) as f:
    for line in f:
        if line.startswith("// -----// IR Dump"):
            current = []
            parts.append(current)
        elif current is not None:
            current.append(line)
for i, part in enumerate(parts):
    with open(os.path.join(out, "%02d.mlir" % i), "w") as f:
        f.writelines(part)
print("dumps:", len(parts))
