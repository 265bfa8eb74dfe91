#!/usr/bin/python3
"""Writes the seed corpora of the reader fuzz targets from real files.

  make_seeds.py --checkpoints DIR --source ROOT --out OUT

DIR holds the readers' tests' checkpoints (tests/import/make_checkpoints.py);
ROOT is the source tree (its model configs). Writes OUT/<target>/ for the
targets checkpoint, npz, safetensors, config and image. Standard library only.
"""

import argparse
import glob
import os
import struct
import zlib


def write(out, target, name, data):
  os.makedirs(os.path.join(out, target), exist_ok=True)
  with open(os.path.join(out, target, name), 'wb') as f:
    f.write(data)


def read(path):
  with open(path, 'rb') as f:
    return f.read()


def packed(chunks):
  """u32le size + bytes for each chunk (CheckpointFuzzer.cpp's input)."""
  return b''.join(struct.pack('<I', len(c)) + c for c in chunks)


def png(width, height, depth, color, raw_rows, palette=None, extra=b''):
  def chunk(kind, data):
    body = kind + data
    return struct.pack('>I', len(data)) + body + struct.pack(
        '>I', zlib.crc32(body) & 0xffffffff)
  out = b'\x89PNG\r\n\x1a\n'
  out += chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, depth, color,
                                    0, 0, 0))
  if palette:
    out += chunk(b'PLTE', palette)
  out += extra
  out += chunk(b'IDAT', zlib.compress(raw_rows))
  return out + chunk(b'IEND', b'')


def rows(height, row_bytes, filters=(0, 1, 2, 3, 4)):
  data = b''
  for y in range(height):
    data += bytes([filters[y % len(filters)]])
    data += bytes((7 * y + 13 * x) % 256 for x in range(row_bytes))
  return data


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--checkpoints', required=True)
  parser.add_argument('--source', required=True)
  parser.add_argument('--out', required=True)
  args = parser.parse_args()
  ck, out = args.checkpoints, args.out
  for target in ('checkpoint', 'npz', 'safetensors', 'config', 'image'):
    os.makedirs(os.path.join(out, target), exist_ok=True)

  for index in sorted(glob.glob(os.path.join(ck, '*.index'))):
    prefix = index[:-len('.index')]
    shards = sorted(glob.glob(prefix + '.data-*'))
    chunks = [read(index)] + [read(s) for s in shards]
    write(out, 'checkpoint', os.path.basename(prefix), packed(chunks))

  for path in sorted(glob.glob(os.path.join(ck, '*.npz')) +
                     [os.path.join(ck, 'npz_without_suffix')]):
    if os.path.isfile(path):
      write(out, 'npz', os.path.basename(path), read(path))

  for path in sorted(glob.glob(os.path.join(ck, '*.safetensors')) +
                     [os.path.join(ck, 'st_without_suffix')]):
    if os.path.isfile(path):
      write(out, 'safetensors', os.path.basename(path), read(path))

  configs = [os.path.join(ck, 'tiny_config.json')]
  configs += sorted(glob.glob(os.path.join(args.source, 'models', '*',
                                           'config.json')))
  for i, path in enumerate(configs):
    if os.path.isfile(path):
      write(out, 'config', '%d-%s' % (i, os.path.basename(path)), read(path))

  # Images: each PNG colour type and bit depth, every filter, the Netpbm
  # forms, and a .npy (the decoders behind vmoe-run's inputs).
  write(out, 'image', 'gray8.png', png(5, 4, 8, 0, rows(4, 5)))
  write(out, 'image', 'gray1.png', png(9, 3, 1, 0, rows(3, 2)))
  write(out, 'image', 'gray16.png', png(3, 3, 16, 0, rows(3, 6)))
  write(out, 'image', 'rgb8.png', png(4, 5, 8, 2, rows(5, 12)))
  write(out, 'image', 'rgba16.png', png(2, 3, 16, 6, rows(3, 16)))
  write(out, 'image', 'graya8.png', png(3, 2, 8, 4, rows(2, 6)))
  write(out, 'image', 'palette4.png',
        png(5, 3, 4, 3, rows(3, 3), palette=bytes(range(48))))
  write(out, 'image', 'palette8_trns.png',
        png(3, 3, 8, 3, bytes([0, 1, 2, 3, 0, 3, 2, 1, 0, 0, 0, 1])[:12],
            palette=bytes(range(12)),
            extra=struct.pack('>I', 2) + b'tRNS\x00\x80' +
            struct.pack('>I', zlib.crc32(b'tRNS\x00\x80') & 0xffffffff)))
  write(out, 'image', 'gray.pgm', b'P5\n# c\n4 3\n255\n' + bytes(range(12)))
  write(out, 'image', 'wide.pgm', b'P5 2 2 65535\n' + bytes(range(8)))
  write(out, 'image', 'rgb.ppm', b'P6\n2 2\n255\n' + bytes(range(12)))
  write(out, 'image', 'ascii.pgm', b'P2\n2 2\n15\n0 5\n10 15\n')
  write(out, 'image', 'ascii.ppm', b'P3 1 2 255 1 2 3 4 5 6\n')
  header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
  header += b' ' * ((64 - (10 + len(header) + 1) % 64) % 64) + b'\n'
  npy = b'\x93NUMPY\x01\x00' + struct.pack('<H', len(header)) + header
  write(out, 'image', 'array.npy', npy + struct.pack('<6f', *range(6)))


if __name__ == '__main__':
  main()
