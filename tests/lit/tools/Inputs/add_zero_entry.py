"""Copies an .npz and adds one deflated .npy entry of float32 zeros.

Usage: add_zero_entry.py IN.npz OUT.npz NAME BYTES

An entry of IN named NAME.npy is left out (the new one replaces it).

Written in 1 MiB steps (the entry is never held whole), ZIP64 as needed:
the archive of issue #17, a small .npz with a huge entry of zeros.
"""
import sys
import zipfile


def main():
    source, target, name, size = sys.argv[1], sys.argv[2], sys.argv[3], \
        int(sys.argv[4])
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if info.filename != name + ".npy":
                new.writestr(info, old.read(info))
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d,), }" % (
        size // 4)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    with zipfile.ZipFile(target, "a", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=1) as z:
        with z.open(name + ".npy", "w", force_zip64=True) as f:
            f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little"))
            f.write(header.encode("latin1"))
            zeros = bytes(1 << 20)
            for done in range(0, size, len(zeros)):
                f.write(zeros[:min(len(zeros), size - done)])


if __name__ == "__main__":
    main()
