#!/usr/bin/python3
"""Writes the demo's inputs as .npy files vmoe-run reads.

  fashion_mnist_data.py samples MODEL_DIR OUT_DIR
      the bundled sample images (uint8) and labels from MODEL_DIR/samples.npz
  fashion_mnist_data.py testset DATASET_DIR OUT_DIR
      the 10,000 Fashion-MNIST test images and labels from the idx files
      (Debian's dataset-fashion-mnist puts them in
      /usr/share/datasets/fashion-mnist)
"""
import gzip
import os
import sys

import numpy as np


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic >> 8 != 0x08:  # unsigned byte
        raise SystemExit(f"{path}: not an idx file of unsigned bytes")
    rank = magic & 0xFF
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    if body.size != int(np.prod(shape)):
        raise SystemExit(f"{path}: truncated")
    return body.reshape(shape)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("samples", "testset"):
        raise SystemExit(__doc__)
    kind, src, out = sys.argv[1:]
    os.makedirs(out, exist_ok=True)
    if kind == "samples":
        samples = np.load(os.path.join(src, "samples.npz"))
        np.save(os.path.join(out, "samples_images.npy"), samples["images"])
        np.save(os.path.join(out, "samples_labels.npy"),
                samples["labels"].astype(np.int32))
    else:
        images = read_idx(os.path.join(src, "t10k-images-idx3-ubyte.gz"))
        labels = read_idx(os.path.join(src, "t10k-labels-idx1-ubyte.gz"))
        np.save(os.path.join(out, "test_images.npy"), images)
        np.save(os.path.join(out, "test_labels.npy"), labels.astype(np.int32))


if __name__ == "__main__":
    main()
