#!/usr/bin/python3
"""Writes small V-MoE weight files in the three formats vmoe imports.

Uses only the Python standard library and numpy (Debian python3-numpy); the
msgpack bytes are produced here, exactly as msgpack-python 1.0's packb does
for the objects vmoe and flax give it. References are to
docs/vmoe-checkpoint-format.md ("doc: <section>"); the checkpoint
layout (chunks, shards) is a port of vmoe/checkpoints/partitioned.py
(save_checkpoint and helpers), the encoders of serialization.py and
flax/serialization.py.

  make_checkpoints.py --out DIR
      the unit-test set (tiny_*.npz, tiny*.safetensors, vmoe checkpoints
      tiny_ckpt*, dtypes_*), written with exactly representable "pattern"
      values: element j of tensor NAME is ((7*j + h(NAME)) % 101 - 50) / 64
      with h(NAME) = sum((i+1)*ord(c) for i, c in enumerate(NAME)) % 97.
  make_checkpoints.py --out DIR --config CONFIG.json --name NAME
      [--values random|pattern] [--seed N] [--shards N] [--processes N]
      [--expert-partitions N] [--dtype float32|bfloat16|float16|float64]
      weights for any model config (the JSON that vmoe-compile reads, flat or
      nested) as NAME.npz, NAME.safetensors, NAME.index + NAME.data-*.
  make_checkpoints.py --selftest
      checks the msgpack encoder against the byte examples of the format doc.
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np

# ---- msgpack (msgpack-python packb(use_bin_type=True)) -------------------------


class Ext:
  """msgpack.ExtType(code, data)."""

  def __init__(self, code, data):
    self.code = code
    self.data = data


def packb(obj):
  out = bytearray()
  _pack(obj, out)
  return bytes(out)


def _pack(obj, out):
  if obj is None:
    out.append(0xc0)
  elif obj is True:
    out.append(0xc3)
  elif obj is False:
    out.append(0xc2)
  elif isinstance(obj, int):
    # The smallest form (doc: "msgpack conventions").
    if 0 <= obj <= 0x7f:
      out.append(obj)
    elif -32 <= obj < 0:
      out.append(obj & 0xff)
    elif 0 <= obj <= 0xff:
      out += b'\xcc' + struct.pack('>B', obj)
    elif 0 <= obj <= 0xffff:
      out += b'\xcd' + struct.pack('>H', obj)
    elif 0 <= obj <= 0xffffffff:
      out += b'\xce' + struct.pack('>I', obj)
    elif 0 <= obj:
      out += b'\xcf' + struct.pack('>Q', obj)
    elif obj >= -0x80:
      out += b'\xd0' + struct.pack('>b', obj)
    elif obj >= -0x8000:
      out += b'\xd1' + struct.pack('>h', obj)
    elif obj >= -0x80000000:
      out += b'\xd2' + struct.pack('>i', obj)
    else:
      out += b'\xd3' + struct.pack('>q', obj)
  elif isinstance(obj, float):
    out += b'\xcb' + struct.pack('>d', obj)
  elif isinstance(obj, str):
    data = obj.encode('utf-8')
    n = len(data)
    if n < 32:
      out.append(0xa0 | n)
    elif n < 0x100:
      out += b'\xd9' + struct.pack('>B', n)
    elif n < 0x10000:
      out += b'\xda' + struct.pack('>H', n)
    else:
      out += b'\xdb' + struct.pack('>I', n)
    out += data
  elif isinstance(obj, (bytes, bytearray)):
    n = len(obj)
    if n < 0x100:
      out += b'\xc4' + struct.pack('>B', n)
    elif n < 0x10000:
      out += b'\xc5' + struct.pack('>H', n)
    else:
      out += b'\xc6' + struct.pack('>I', n)
    out += obj
  elif isinstance(obj, (list, tuple)):
    n = len(obj)
    if n < 16:
      out.append(0x90 | n)
    elif n < 0x10000:
      out += b'\xdc' + struct.pack('>H', n)
    else:
      out += b'\xdd' + struct.pack('>I', n)
    for x in obj:
      _pack(x, out)
  elif isinstance(obj, dict):
    n = len(obj)
    if n < 16:
      out.append(0x80 | n)
    elif n < 0x10000:
      out += b'\xde' + struct.pack('>H', n)
    else:
      out += b'\xdf' + struct.pack('>I', n)
    for k, v in obj.items():
      _pack(k, out)
      _pack(v, out)
  elif isinstance(obj, Ext):
    # fixext 1/2/4/8/16 when the payload has exactly that size, else
    # ext 8/16/32 (doc: "msgpack conventions").
    n = len(obj.data)
    fixed = {1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8}
    if n in fixed:
      out.append(fixed[n])
    elif n < 0x100:
      out += b'\xc7' + struct.pack('>B', n)
    elif n < 0x10000:
      out += b'\xc8' + struct.pack('>H', n)
    else:
      out += b'\xc9' + struct.pack('>I', n)
    out += struct.pack('>b', obj.code)
    out += obj.data
  else:
    raise TypeError(f'cannot pack {type(obj)}')


# ---- arrays -----------------------------------------------------------------------


class Array:
  """An array with its dtype name: numpy has no bfloat16, so bfloat16 data
  is kept as uint16 bits with name 'bfloat16' (ml_dtypes' dtype.name)."""

  def __init__(self, values, dtype):
    self.dtype = dtype
    if dtype == 'bfloat16':
      f32 = np.asarray(values, dtype=np.float32)
      bits = f32.view(np.uint32)
      assert np.all(bits & 0xffff == 0), 'value not exact in bfloat16'
      self.data = (bits >> 16).astype(np.uint16)
    else:
      self.data = np.asarray(values, dtype=dtype)
      assert np.all(
          self.data.astype(np.float64) == np.asarray(values, np.float64)
      ) or dtype == 'float64' or dtype == 'int32', 'value not exact'

  @property
  def shape(self):
    return tuple(int(d) for d in self.data.shape)

  @property
  def itemsize(self):
    return self.data.dtype.itemsize

  @property
  def size(self):
    return int(self.data.size)


# ---- flax / vmoe encoders (doc: "Ext codes") ------------------------------------------


def ndarray_to_bytes(data, dtype_name):
  # flax _ndarray_to_bytes: (x.shape, x.dtype.name, x.tobytes('C')).
  return packb((tuple(int(d) for d in data.shape), dtype_name,
                data.tobytes('C')))


def slice_to_bytes(start, stop):
  # _slice_to_bytes: (start, stop, step) with step None.
  return packb((start, stop, None))


def slice_nd_to_bytes(slice_nd):
  return packb(tuple(slice_to_bytes(a, b) for a, b in slice_nd))


def shaped_array_to_bytes(shape, dtype_name):
  # (shape, dtype.name, weak_type, {}).
  return packb((tuple(shape), dtype_name, False, {}))


def index_info_ext(shape, dtype_name, slices, shards):
  # _index_info_to_bytes: the parts are bin, not ext (doc: ext 8).
  tpl = (shaped_array_to_bytes(shape, dtype_name),
         tuple(slice_nd_to_bytes(s) for s in slices), tuple(shards))
  return Ext(8, packb(tpl))


MAGIC = '__msgpack_array_chunk_a87ca2__'
FLAX_MAX_CHUNK_SIZE = 2**30  # flax.serialization.MAX_CHUNK_SIZE
VMOE_MAX_CHUNK_BYTES = 268_435_456  # partitioned.MAX_CHUNK_BYTES


def split_slicend(slicend, max_chunk_items):
  """partitioned._split_slicend."""
  shape = tuple(b - a for a, b in slicend)
  chunk_items = int(np.prod(shape))
  chunks = [tuple(slicend)]
  max_chunk_items = max_chunk_items or -1
  if max_chunk_items < 1 or chunk_items <= max_chunk_items:
    return chunks
  for i, size in sorted(enumerate(shape), key=lambda t: (t[1], t[0])):
    if size == 1:
      continue
    splits = [
        s for s in range(2, 10)
        if size % s == 0 and chunk_items // s <= max_chunk_items
    ]
    splits = (splits or [size])[0]
    start, stop, step = slicend[i][0], slicend[i][1], size // splits
    chunks = [
        chunk[:i] + ((j, j + step),) + chunk[i + 1:]
        for chunk in chunks
        for j in range(start, stop, step)
    ]
    chunk_items /= splits
    if chunk_items <= max_chunk_items:
      break
  return chunks


def flatten_sorted(tree, prefix=(), top_as_given=False):
  """jax.tree_util.tree_flatten order of nested dicts: sorted keys. With
  top_as_given, the top level keeps its order, as a flax struct dataclass
  (TrainState) flattens in field order."""
  for key in (list(tree) if top_as_given else sorted(tree)):
    value = tree[key]
    if isinstance(value, dict):
      yield from flatten_sorted(value, prefix + (key,))
    else:
      yield prefix + (key,), value


def unflatten(items):
  tree = {}
  for path, value in items:
    node = tree
    for k in path[:-1]:
      node = node.setdefault(k, {})
    node[path[-1]] = value
  return tree


def save_vmoe_checkpoint(prefix, tree, *, processes=1, devices_per_process=1,
                         expert_partitions=1, num_shards=None,
                         max_chunk_bytes=VMOE_MAX_CHUNK_BYTES,
                         flax_max_chunk_size=FLAX_MAX_CHUNK_SIZE,
                         version=True, top_as_given=False):
  """vmoe.checkpoints.partitioned.save_checkpoint on a simulated mesh.

  The mesh has processes * devices_per_process devices; device d belongs to
  process d // devices_per_process. Arrays whose '/' path contains
  'Moe/Mlp/' and that have more than 1 element are split along axis 0 into
  expert_partitions slices (vmoe's ('Moe/Mlp/.*', ('expert',)) rule); device
  d holds slice d * expert_partitions // num_devices. Others are replicated.

  version=False writes an index without 'version', as vmoe did before
  2022-06-22; with top_as_given the top level of `tree` stands for a
  dataclass (TrainState), flattened and written in its field order (the old
  writer: struct.unflatten of the user's tree, then to_state_dict).
  """
  devices = processes * devices_per_process
  assert devices % expert_partitions == 0
  leaves = list(flatten_sorted(tree, top_as_given=top_as_given))
  if num_shards is None or num_shards < processes:
    num_shards = processes
  bytes_per_shard = [0] * num_shards
  index_leaves = []
  shard_chunks = {i: {} for i in range(num_shards)}
  for i, (path, arr) in enumerate(leaves):
    shape = arr.shape
    name = '/'.join(path)
    sharded = 'Moe/Mlp/' in name and arr.size > 1
    # Device slices (_shard_index_to_slicend) and the processes holding them.
    slice_processes = {}
    for d in range(devices):
      if sharded:
        part = d * expert_partitions // devices
        step = shape[0] // expert_partitions
        s = ((part * step, (part + 1) * step),) + tuple(
            (0, n) for n in shape[1:])
      else:
        s = tuple((0, n) for n in shape)
      slice_processes.setdefault(s, set()).add(d // devices_per_process)
    # _create_map_slicend_to_array_shards: split into chunks.
    max_chunk_items = (max(max_chunk_bytes // arr.itemsize, 1)
                       if max_chunk_bytes and max_chunk_bytes >= 1 else None)
    chunk_processes = {}
    for s, procs in slice_processes.items():
      for sub in split_slicend(s, max_chunk_items):
        chunk_processes[sub] = procs
    # _create_map_slicend_to_checkpoint_shard.
    slice_to_shard = {}
    for s in sorted(chunk_processes):
      procs = chunk_processes[s]
      ordered = sorted((b, k) for k, b in enumerate(bytes_per_shard))
      shard = [k for _, k in ordered if k % processes in procs][0]
      slice_to_shard[s] = shard
      bytes_per_shard[shard] += int(np.prod([b - a for a, b in s])) * arr.itemsize
    global_slices = sorted(slice_to_shard)
    index_leaves.append(
        (path,
         index_info_ext(shape, arr.dtype, global_slices,
                        [slice_to_shard[s] for s in global_slices])))
    for s, shard in slice_to_shard.items():
      shard_chunks[shard].setdefault(i, []).append(s)
  # The index (doc: ".index"): keys in insertion order shard_count, index,
  # version; the tree rebuilt with sorted keys.
  index = {'shard_count': num_shards, 'index': unflatten(index_leaves)}
  if version:
    index['version'] = '20220622'
  files = {prefix + '.index': packb(index)}
  # The shards (doc: ".data-i-of-N"): _lazy_array_chunks_encode.
  for shard in range(num_shards):
    state = {MAGIC: True}
    for i, slices in shard_chunks[shard].items():
      arr = leaves[i][1]
      encoded = []
      for s in slices:
        index_expr = tuple(slice(a, b) for a, b in s)
        chunk = arr.data[index_expr].flatten()
        subchunk_size = max(1, int(flax_max_chunk_size / arr.itemsize))
        subchunks = [
            Ext(1, ndarray_to_bytes(chunk[k:k + subchunk_size], arr.dtype))
            for k in range(0, chunk.size, subchunk_size)
        ]
        encoded.append([subchunks, Ext(6, slice_nd_to_bytes(s))])
      state[str(i)] = encoded
    files[f'{prefix}.data-{shard:05d}-of-{num_shards:05d}'] = packb(state)
  for path, data in files.items():
    with open(path, 'wb') as f:
      f.write(data)
  return files


# ---- .npz and safetensors -----------------------------------------------------------


def npy_array(arr):
  """The numpy array np.save writes: bfloat16 as a 2-byte void ('|V2')."""
  if arr.dtype == 'bfloat16':
    return arr.data.view('V2')
  return arr.data


def save_npz(path, flat, compressed=False, prefix=''):
  arrays = {prefix + name: npy_array(arr) for name, arr in flat.items()}
  (np.savez_compressed if compressed else np.savez)(path, **arrays)


SAFETENSORS_DTYPES = {'float32': 'F32', 'bfloat16': 'BF16',
                      'float16': 'F16', 'float64': 'F64', 'int32': 'I32'}


def save_safetensors(path, flat, metadata=None):
  """The safetensors layout: u64 LE header length, JSON header padded with
  spaces to a multiple of 8, then the tensors back to back."""
  header = {}
  if metadata is not None:
    header['__metadata__'] = metadata
  offset = 0
  blobs = []
  for name in sorted(flat):
    arr = flat[name]
    blob = arr.data.astype(arr.data.dtype.newbyteorder('<')).tobytes('C')
    header[name] = {'dtype': SAFETENSORS_DTYPES[arr.dtype],
                    'shape': list(arr.shape),
                    'data_offsets': [offset, offset + len(blob)]}
    offset += len(blob)
    blobs.append(blob)
  text = json.dumps(header, separators=(',', ':')).encode()
  text += b' ' * (-len(text) % 8)
  with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(text)))
    f.write(text)
    for blob in blobs:
      f.write(blob)


# ---- V-MoE parameter trees (vmoe-reference.md section 7) -------------------------------


def read_config(path):
  """The fields of a model config JSON (nested vmoe form or flat form)."""
  with open(path) as f:
    raw = json.load(f)
  if 'model' in raw and isinstance(raw['model'], dict):
    raw = dict(raw['model'], **{k: v for k, v in raw.items() if k != 'model'})
  flat = {}

  def walk(obj, prefix):
    for k, v in obj.items():
      key = prefix + k
      if isinstance(v, dict) and k not in ('patch_size', 'patches'):
        walk(v, key + '.')
      else:
        flat[key] = v

  walk(raw, '')

  def get(*names, default=None):
    for n in names:
      if n in flat:
        return flat[n]
    return default

  def pair(v):
    if isinstance(v, dict):
      v = v['size']
    return (v, v) if isinstance(v, int) else tuple(v)

  enc = ('encoder.', 'transformer.', '')
  moe = ('encoder.moe.', 'moe.', '')
  return {
      'image_size': pair(get('image_size', default=224)),
      'num_channels': get('num_channels', 'channels', default=3),
      'patch_size': pair(get('patch_size', 'patches'))[0],
      'hidden_size': get('hidden_size'),
      'classifier': get('classifier', default='token'),
      'representation_size': get('representation_size'),
      'num_classes': get('num_classes'),
      'num_layers': get(*[p + 'num_layers' for p in enc]),
      'mlp_dim': get(*[p + 'mlp_dim' for p in enc]),
      'num_heads': get(*[p + 'num_heads' for p in enc]),
      'moe_layers': list(get('encoder.moe.layers', 'moe.layers', 'moe_layers',
                             default=[])),
      'num_experts': get(*[p + 'num_experts' for p in moe], default=8),
  }


TINY = {
    'image_size': (8, 8), 'num_channels': 3, 'patch_size': 4,
    'hidden_size': 8, 'classifier': 'token', 'representation_size': 6,
    'num_classes': 5, 'num_layers': 4, 'mlp_dim': 12, 'num_heads': 2,
    'moe_layers': [1, 3], 'num_experts': 4,
}

TINY_CONFIG_JSON = {
    'name': 'tiny_vmoe',
    'image_size': 8,
    'patch_size': {'size': [4, 4]},
    'hidden_size': 8,
    'classifier': 'token',
    'representation_size': 6,
    'num_classes': 5,
    'encoder': {
        'num_layers': 4, 'mlp_dim': 12, 'num_heads': 2,
        'moe': {
            'layers': [1, 3], 'num_experts': 4, 'group_size': 10,
            'router': {
                'num_selected_experts': 2,
                'dispatcher': {'capacity_factor': 1.5,
                               'batch_priority': False, 'bfloat16': False},
            },
        },
    },
    'batch_size': 2,
}


def param_shapes(c):
  """(name, shape) of every parameter, vmoe-reference.md section 7."""
  d, p, h = c['hidden_size'], c['patch_size'], c['num_heads']
  m, e = c['mlp_dim'], c['num_experts']
  tokens = (c['image_size'][0] // p) * (c['image_size'][1] // p)
  tokens += 1 if c['classifier'] == 'token' else 0
  out = [('embedding/kernel', (p, p, c['num_channels'], d)),
         ('embedding/bias', (d,))]
  if c['classifier'] == 'token':
    out.append(('cls', (1, 1, d)))
  out.append(('Encoder/posembed_input/pos_embedding', (1, tokens, d)))
  for i in range(c['num_layers']):
    b = f'Encoder/encoderblock_{i}/'
    out += [(b + 'LayerNorm_0/scale', (d,)), (b + 'LayerNorm_0/bias', (d,))]
    for part in ('query', 'key', 'value'):
      out += [(b + f'SelfAttention/{part}/kernel', (d, h, d // h)),
              (b + f'SelfAttention/{part}/bias', (h, d // h))]
    out += [(b + 'SelfAttention/out/kernel', (h, d // h, d)),
            (b + 'SelfAttention/out/bias', (d,)),
            (b + 'LayerNorm_1/scale', (d,)), (b + 'LayerNorm_1/bias', (d,))]
    if i in c['moe_layers']:
      out += [(b + 'Moe/Router/dense/kernel', (d, e)),
              (b + 'Moe/Mlp/Dense_0/kernel', (e, d, m)),
              (b + 'Moe/Mlp/Dense_0/bias', (e, m)),
              (b + 'Moe/Mlp/Dense_1/kernel', (e, m, d)),
              (b + 'Moe/Mlp/Dense_1/bias', (e, d))]
    else:
      out += [(b + 'Mlp/Dense_0/kernel', (d, m)), (b + 'Mlp/Dense_0/bias', (m,)),
              (b + 'Mlp/Dense_1/kernel', (m, d)), (b + 'Mlp/Dense_1/bias', (d,))]
  out += [('Encoder/encoder_norm/scale', (d,)),
          ('Encoder/encoder_norm/bias', (d,))]
  features = d
  if c['representation_size']:
    features = c['representation_size']
    out += [('pre_logits/kernel', (d, features)),
            ('pre_logits/bias', (features,))]
  out += [('head/kernel', (features, c['num_classes'])),
          ('head/bias', (c['num_classes'],))]
  return out


def pattern_values(name, shape):
  """Exact in float16, bfloat16, float32 and float64 (k/64, |k| <= 50)."""
  h = sum((i + 1) * ord(ch) for i, ch in enumerate(name)) % 97
  j = np.arange(int(np.prod(shape)), dtype=np.int64)
  return (((7 * j + h) % 101 - 50) / 64.0).reshape(shape)


def random_values(name, shape, rng):
  fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
  scale = 1.0 / math.sqrt(max(fan_in, 1))
  if name.endswith('scale'):
    return 1.0 + 0.1 * rng.standard_normal(shape)
  return scale * rng.standard_normal(shape)


def make_weights(config, dtype='float32', values='pattern', seed=0):
  rng = np.random.RandomState(seed)
  flat = {}
  for name, shape in param_shapes(config):
    v = (pattern_values(name, shape) if values == 'pattern' else
         random_values(name, shape, rng))
    if dtype == 'bfloat16':
      # Round to bfloat16 (nearest even) so the value is exact.
      bits = v.astype(np.float32).view(np.uint32).astype(np.uint64)
      bits = (bits + 0x7fff + ((bits >> 16) & 1)) >> 16 << 16
      v = bits.astype(np.uint32).view(np.float32)
    elif dtype != 'float64':
      v = v.astype(dtype)
    flat[name] = Array(v, dtype)
  return flat


def tree_of(flat):
  return unflatten([(tuple(name.split('/')), arr) for name, arr in flat.items()])


# ---- the unit-test set ---------------------------------------------------------------


def dtype_tensors():
  """Tensors of each dtype with special values (what the tests expect is
  written out in tests/unit/readers/ReaderTest.cpp)."""
  bf16 = [1.0, -2.5, 0.15625, 2.0**100, -(2.0**-130), 0.0, -0.0, 3.0, 65280.0,
          -1.0, 0.5, 2.0**-126]
  f16 = [0.0, -0.0, 2.0**-24, 65504.0, float('inf'), -1.5]
  f64 = [0.1, 1e-50, 1e300, -3.25, 2.0**-149]
  return {
      'bf16': Array(np.array(bf16, np.float64).reshape(3, 4), 'bfloat16'),
      'f16': Array(np.array(f16, np.float64).reshape(2, 3), 'float16'),
      'f64': Array(np.array(f64, np.float64), 'float64'),
      'scalar': Array(np.array(-7.75), 'float32'),
  }


def write_test_set(out):
  os.makedirs(out, exist_ok=True)
  p = lambda name: os.path.join(out, name)
  flat = make_weights(TINY)
  tree = tree_of(flat)
  with open(p('tiny_config.json'), 'w') as f:
    json.dump(TINY_CONFIG_JSON, f, indent=2)
  save_npz(p('tiny.npz'), flat)
  save_npz(p('tiny_params_deflate.npz'), flat, compressed=True,
           prefix='params/')
  save_safetensors(p('tiny.safetensors'), flat, metadata={'format': 'np'})
  # One process, one shard, vmoe's defaults.
  save_vmoe_checkpoint(p('tiny_ckpt'), tree)
  # 2 processes x 2 devices, experts split 4 ways, 3 shards, 96-byte chunks.
  save_vmoe_checkpoint(p('tiny_ckpt_sharded'), tree, processes=2,
                       devices_per_process=2, expert_partitions=4,
                       num_shards=3, max_chunk_bytes=96)
  # flax's subchunking with MAX_CHUNK_SIZE lowered to 40 bytes.
  save_vmoe_checkpoint(p('tiny_ckpt_subchunks'), tree,
                       flax_max_chunk_size=40)
  # Written before 2022-06-22: no 'version' key.
  save_vmoe_checkpoint(p('tiny_ckpt_unversioned'), tree, version=False)
  # A train state: params next to other leaves (ids count them all).
  state = {
      'params': tree,
      'opt_state': {'mu': {'head': {'bias': Array(np.zeros(5), 'float32')}},
                    'count': Array(np.array(3), 'int32')},
      'step': Array(np.array(1000), 'int32'),
  }
  save_vmoe_checkpoint(p('tiny_ckpt_trainstate'), state, processes=2,
                       num_shards=2)
  # The old writer on a TrainState(step, params, opt_state) dataclass.
  fields = {'step': state['step'], 'params': tree,
            'opt_state': state['opt_state']}
  save_vmoe_checkpoint(p('tiny_ckpt_unversioned_trainstate'), fields,
                       processes=2, num_shards=2, version=False,
                       top_as_given=True)
  # bfloat16 parameters throughout, 2 shards.
  bf16 = make_weights(TINY, dtype='bfloat16')
  save_vmoe_checkpoint(p('tiny_ckpt_bf16'), tree_of(bf16), processes=2,
                       devices_per_process=1, expert_partitions=2)
  dt = dtype_tensors()
  save_npz(p('dtypes.npz'), dt)
  save_safetensors(p('dtypes.safetensors'), dt)
  save_vmoe_checkpoint(p('dtypes_ckpt'), dt)
  with open(p('stamp'), 'w') as f:
    f.write('ok\n')


# ---- self-test: the byte examples of the format doc -------------------------------------


def selftest():
  # doc: ".index" example, {'b': f32[2,3], 'a': {'s': int32 scalar}}.
  index = (
      '83 ab 73 68 61 72 64 5f 63 6f 75 6e 74 01 a5 69 6e 64 65 78 82'
      ' a1 61 81 a1 73 c7 13 08 93 c4 0a 94 90 a5 69 6e 74 33 32 c2 80'
      ' 91 c4 01 90 91 00'
      ' a1 62 c7 23 08 93 c4 0e 94 92 02 03 a7 66 6c 6f 61 74 33 32 c2 80'
      ' 91 c4 0d 92 c4 04 93 00 02 c0 c4 04 93 00 03 c0 91 00'
      ' a7 76 65 72 73 69 6f 6e a8 32 30 32 32 30 36 32 32')
  want_index = bytes.fromhex(index)
  assert len(want_index) == 105, len(want_index)
  import tempfile
  with tempfile.TemporaryDirectory() as d:
    tree = {'b': Array(np.arange(6, dtype=np.float32).reshape(2, 3),
                       'float32'),
            'a': {'s': Array(np.array(7), 'int32')}}
    files = save_vmoe_checkpoint(os.path.join(d, 'x'), tree)
    got_index = files[os.path.join(d, 'x.index')]
    assert got_index == want_index, got_index.hex(' ')
    data = files[os.path.join(d, 'x.data-00000-of-00001')]
    assert len(data) == 120, len(data)
    want_prefix = bytes.fromhex(
        '83 be' + MAGIC.encode().hex() + 'c3 a1 30 91 92 91 c7 0f 01 93 91 01'
        ' a5 69 6e 74 33 32 c4 04 07 00 00 00 d4 06 90 a1 31 91 92 91 c7 25 01'
        ' 93 91 06 a7 66 6c 6f 61 74 33 32 c4 18')
    assert data.startswith(want_prefix), data.hex(' ')
    assert data[len(want_prefix):len(want_prefix) + 24] == np.arange(
        6, dtype=np.float32).tobytes()
    assert data[len(want_prefix) + 24:] == bytes.fromhex(
        'c7 0d 06 92 c4 04 93 00 02 c0 c4 04 93 00 03 c0')
  print('selftest: the index and data bytes match the format doc')


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--out')
  parser.add_argument('--selftest', action='store_true')
  parser.add_argument('--config')
  parser.add_argument('--name', default='weights')
  parser.add_argument('--values', choices=['pattern', 'random'],
                      default='random')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--dtype', default='float32',
                      choices=['float32', 'bfloat16', 'float16', 'float64'])
  parser.add_argument('--shards', type=int, default=1)
  parser.add_argument('--processes', type=int, default=1)
  parser.add_argument('--expert-partitions', type=int, default=1)
  args = parser.parse_args()
  if args.selftest:
    selftest()
    if not args.out:
      return
  if not args.out:
    parser.error('--out is required')
  if args.config:
    os.makedirs(args.out, exist_ok=True)
    config = read_config(args.config)
    flat = make_weights(config, args.dtype, args.values, args.seed)
    base = os.path.join(args.out, args.name)
    save_npz(base + '.npz', flat)
    save_safetensors(base + '.safetensors', flat)
    devices = max(args.processes, args.expert_partitions)
    save_vmoe_checkpoint(base, tree_of(flat), processes=args.processes,
                         devices_per_process=devices // args.processes,
                         expert_partitions=args.expert_partitions,
                         num_shards=args.shards)
    return
  selftest()
  write_test_set(args.out)


if __name__ == '__main__':
  main()
