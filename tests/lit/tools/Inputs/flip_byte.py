"""Copies a module with one bit of its first segment flipped (stdlib only).

  flip_byte.py IN OUT

The first segment of a compiled module is a weight (the serializer adds the
constants before the executable); the header's segment_base is the uint64 at
byte 32 (format/include/vmoe/module_format.h).
"""
import struct
import sys

data = bytearray(open(sys.argv[1], "rb").read())
segment_base = struct.unpack_from("<Q", data, 32)[0]
data[segment_base + 5] ^= 0x10
open(sys.argv[2], "wb").write(data)
