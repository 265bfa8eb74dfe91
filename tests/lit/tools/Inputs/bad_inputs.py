"""Writes the bad inputs of bad-inputs.test into a directory (stdlib only).

  bad_inputs.py OUT MODULE

OUT/nan.npy: four 28x28x1 float32 images: all NaN, all +Inf, and two zero
images; OUT/shape.npy: float32 (2, 28, 28, 3); OUT/f64.npy: float64 images;
OUT/truncated.vmoe: the first 1000 bytes of MODULE; OUT/k9.json: the bundled
config with k = 9 > 8 experts.
"""
import json
import os
import struct
import sys


def npy(path, descr, shape, payload):
  header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (
      descr, str(tuple(shape)))
  header += ' ' * ((64 - (10 + len(header) + 1) % 64) % 64) + '\n'
  with open(path, 'wb') as f:
    f.write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(header)))
    f.write(header.encode('latin1') + payload)


def main():
  out, module = sys.argv[1], sys.argv[2]
  pixels = 28 * 28
  values = ([float('nan')] * pixels + [float('inf')] * pixels +
            [0.0] * (2 * pixels))
  npy(os.path.join(out, 'nan.npy'), '<f4', (4, 28, 28, 1),
      struct.pack('<%df' % len(values), *values))
  npy(os.path.join(out, 'shape.npy'), '<f4', (2, 28, 28, 3),
      bytes(4 * 2 * pixels * 3))
  npy(os.path.join(out, 'f64.npy'), '<f8', (2, 28, 28, 1),
      bytes(8 * 2 * pixels))
  with open(module, 'rb') as f:
    head = f.read(1000)
  with open(os.path.join(out, 'truncated.vmoe'), 'wb') as f:
    f.write(head)
  src = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..',
                     'models', 'fashion-mnist', 'config.json')
  with open(src) as f:
    config = json.load(f)
  config['encoder']['moe']['router']['num_selected_experts'] = 9
  with open(os.path.join(out, 'k9.json'), 'w') as f:
    json.dump(config, f)


if __name__ == '__main__':
  main()
