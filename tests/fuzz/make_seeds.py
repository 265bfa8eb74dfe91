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


# Two small JPEGs made with TurboJPEG (quality 50): an 8x8 grayscale
# baseline and a 16x16 4:2:0 progressive one (the standard library has no
# JPEG encoder).
JPEG_GRAY = bytes.fromhex(
    'ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a10'
    '0e0d0e1211101318281a181616183123251d283a333d3c3933383740485c4e40'
    '4457453738506d51575f626768673e4d71797064785c656763ffc0000b080008'
    '000801011100ffc4001f00000105010101010101000000000000000001020304'
    '05060708090a0bffc400b5100002010303020403050504040000017d01020300'
    '041105122131410613516107227114328191a1082342b1c11552d1f024336272'
    '82090a161718191a25262728292a3435363738393a434445464748494a535455'
    '565758595a636465666768696a737475767778797a838485868788898a929394'
    '95969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9'
    'cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda'
    '0008010100003f006476e9346d61a7b2a5a203f68b9ce0381d403fddf53dfe9d'
    '7fffd9'
)
JPEG_PROGRESSIVE = bytes.fromhex(
    'ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a10'
    '0e0d0e1211101318281a181616183123251d283a333d3c3933383740485c4e40'
    '4457453738506d51575f626768673e4d71797064785c656763ffdb0043011112'
    '121815182f1a1a2f634238426363636363636363636363636363636363636363'
    '636363636363636363636363636363636363636363636363636363636363ffc2'
    '0011080010001003012200021101031101ffc400160001010100000000000000'
    '000000000000000102ffc40014010100000000000000000000000000000000ff'
    'da000c03010002100310000001468fffc4001710000301000000000000000000'
    '0000000001113100ffda000801010001050241d1a9ffc4001411010000000000'
    '0000000000000000000000ffda0008010301013f017fffc40014110100000000'
    '000000000000000000000000ffda0008010201013f017fffc4001e1000010207'
    '0100000000000000000000000011410112314261c1f0d1ffda0008010100063f'
    '0295ba02b18aec4b7bd3ffc4001d100002020203010000000000000000000001'
    '1100c121513171a1b1ffda0008010100013f21180e051e99b08f5003f01a31b1'
    '8c27c0a45a8057a4527fffda000c0301000200030000001023ffc40018110100'
    '0301000000000000000000000000012171f0c1ffda0008010301013f106675bc'
    '33ffc40019110001050000000000000000000000000001003161b1e1ffda0008'
    '010201013f106335a57fffc4001b100100030003010000000000000000000001'
    '001121315161f1ffda0008010100013f10a12a25543c939b9f08b509a12b5f7f'
    '720de9056d4bf566a8ecdf71e33966e43fffd9'
)


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

  # Images: each PNG colour type and bit depth, every filter, JPEGs, the
  # Netpbm forms, and a .npy (the decoders behind vmoe-run's inputs).
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
  write(out, 'image', 'gray8x8.jpg', JPEG_GRAY)
  write(out, 'image', 'rgb16x16_progressive.jpg', JPEG_PROGRESSIVE)
  header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
  header += b' ' * ((64 - (10 + len(header) + 1) % 64) % 64) + b'\n'
  npy = b'\x93NUMPY\x01\x00' + struct.pack('<H', len(header)) + header
  write(out, 'image', 'array.npy', npy + struct.pack('<6f', *range(6)))


if __name__ == '__main__':
  main()
