//===- VmoeCheckpoint.cpp - vmoe's sharded msgpack checkpoints ------------===//
//
// Section references ("doc: ...") are to docs/vmoe-checkpoint-format.md.
//
//===----------------------------------------------------------------------===//

#include "vmoe/readers/VmoeCheckpoint.h"

#include "vmoe/readers/MsgpackObject.h"

#include "Support.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <set>

namespace vmoe::readers {

using detail::quote;
using mp::Document;
using mp::Object;
using mp::Type;

std::string vmoeShardPath(const std::string &prefix, uint64_t shard,
                          uint64_t shardCount) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), ".data-%05llu-of-%05llu",
                static_cast<unsigned long long>(shard),
                static_cast<unsigned long long>(shardCount));
  return prefix + buffer;
}

namespace {

constexpr std::string_view kMagicKey = "__msgpack_array_chunk_a87ca2__";
constexpr std::string_view kVersionV1 = "20220622";
constexpr uint64_t kMaxShards = uint64_t(1) << 20;

// Ext codes (doc: "Ext codes").
constexpr int8_t kExtNdarray = 1;
constexpr int8_t kExtShapedArray = 4;
constexpr int8_t kExtSlice = 5;
constexpr int8_t kExtSliceNd = 6;
constexpr int8_t kExtIndexInfo = 8;

struct Range {
  int64_t start = 0, stop = 0;
  bool operator<(const Range &o) const {
    return start != o.start ? start < o.start : stop < o.stop;
  }
  bool operator==(const Range &o) const {
    return start == o.start && stop == o.stop;
  }
};
using SliceNd = std::vector<Range>;

std::string sliceString(const SliceNd &s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i)
    out += (i ? ", " : "") + std::to_string(s[i].start) + ":" +
           std::to_string(s[i].stop);
  return out + "]";
}

struct Chunk {
  bool found = false;
  std::vector<ByteSpan> pieces;
};

struct Leaf {
  std::string path;
  std::string name;
  bool selected = false;
  bool skipped = false; // a non-float dtype, with skipNonFloat
  std::vector<int64_t> shape;
  uint64_t numel = 0;
  DType type = DType::F32;
  std::string dtypeName;
  std::vector<SliceNd> slices;
  std::vector<uint64_t> shards;
  std::vector<Chunk> chunks;
  std::map<SliceNd, size_t> sliceIndex;
};

class Reader {
public:
  Reader(const std::string &indexName, const ReadOptions &options,
         std::string *error)
      : indexName_(indexName), options_(options), error_(error) {}

  bool run(ByteSpan index, const VmoeShardSource &source, TensorMap &out) {
    return parseIndex(index) && readShards(source) && assemble(out);
  }

private:
  bool fail(const std::string &message) {
    *error_ = message;
    return false;
  }
  bool failIndex(const std::string &message) {
    return fail(indexName_ + ": " + message);
  }

  // ---- the index -----------------------------------------------------------

  bool parseIndex(ByteSpan bytes) {
    std::string why;
    if (!indexDoc_.parse(bytes, &why, options_.limits))
      return failIndex(why);
    const Object &root = indexDoc_.root();
    if (root.type != Type::MAP)
      return failIndex(std::string("not a vmoe checkpoint index: the "
                                   "top-level value is ") +
                       mp::kindName(root) + ", expected a map");
    if (!checkUniqueKeys(root, "the top-level map", indexName_))
      return false;
    const Object *count = mp::find(root, "shard_count");
    const Object *tree = mp::find(root, "index");
    const Object *version = mp::find(root, "version");
    if (!count || !tree)
      return failIndex("not a vmoe checkpoint index: no 'shard_count' or no "
                       "'index' key");
    int64_t shards = 0;
    if (!mp::toInt64(*count, shards) || shards < 1 ||
        uint64_t(shards) > kMaxShards)
      return failIndex("'shard_count' must be an integer in [1, " +
                       std::to_string(kMaxShards) + "]");
    shardCount_ = uint64_t(shards);
    // doc: "Pre-V1 ("UNKNOWN") checkpoints have no 'version' key"; the
    // bytes of IndexInfo and of the chunks are the same.
    if (version && version->type != Type::NIL &&
        !(version->type == Type::STR && mp::text(*version) == kVersionV1))
      return failIndex(
          "unsupported checkpoint version " +
          (version->type == Type::STR
               ? quote(mp::text(*version))
               : std::string("of type ") + mp::kindName(*version)) +
          " (this reader knows '20220622' and un-versioned indexes)");
    if (tree->type != Type::MAP)
      return failIndex(std::string("'index' is ") + mp::kindName(*tree) +
                       ", expected a map");
    versioned_ = version && version->type == Type::STR;
    // A train state: read only its params.
    const Object *params = mp::find(*tree, "params");
    selectPrefix_ = params && params->type == Type::MAP ? "params/" : "";
    if (!flatten(*tree, ""))
      return false;
    for (Leaf &leaf : leaves_) {
      if (!leaf.selected)
        continue;
      if (!decodeIndexInfo(leaf))
        return false;
    }
    return true;
  }

  bool checkUniqueKeys(const Object &map, const std::string &where,
                       const std::string &file) {
    std::set<std::string_view> seen;
    for (size_t i = 0; i < mp::size(map); ++i) {
      const Object &k = mp::key(map, i);
      if (k.type != Type::STR)
        return fail(file + ": a key of " + where + " is " + mp::kindName(k) +
                    ", expected str");
      if (!seen.insert(mp::text(k)).second)
        return fail(file + ": duplicate key " + quote(mp::text(k)) + " in " +
                    where);
    }
    return true;
  }

  // Numbers the leaves. V1: as vmoe's reader does, in jax's flatten order of
  // the restored dicts, keys sorted by code point at every level (doc:
  // ".index"; vmoe writes them in that order too). Un-versioned: in file
  // order. The old writer numbered the leaves in the flatten order of the
  // saved tree and wrote that tree through to_state_dict, which keeps it:
  // dicts in sorted key order (the same as V1), but a train-state dataclass
  // in field order and a list as '0', '1', ..., '10' (vmoe's reader needs
  // that tree to restore them, partitioned.py
  // _restore_checkpoint_from_index_unknown).
  bool flatten(const Object &map, const std::string &path) {
    std::string where = path.empty() ? "the index tree" : quote(path);
    if (!checkUniqueKeys(map, where, indexName_))
      return false;
    std::vector<std::pair<std::string_view, const Object *>> items;
    items.reserve(mp::size(map));
    for (size_t i = 0; i < mp::size(map); ++i)
      items.push_back({mp::text(mp::key(map, i)), &mp::value(map, i)});
    if (versioned_)
      std::sort(items.begin(), items.end(),
                [](const auto &a, const auto &b) { return a.first < b.first; });
    for (auto &[key, value] : items) {
      if (key.empty() || key.find('/') != std::string_view::npos)
        return failIndex("index key " + quote(key) + " under " + where +
                         " is empty or contains '/'");
      std::string child =
          path.empty() ? std::string(key) : path + "/" + std::string(key);
      if (value->type == Type::MAP) {
        if (!flatten(*value, child))
          return false;
        continue;
      }
      if (value->type != Type::EXT || value->via.ext.type() != kExtIndexInfo)
        return failIndex("index entry " + quote(child) + " is " +
                         mp::kindName(*value) +
                         (value->type == Type::EXT
                              ? " " + std::to_string(value->via.ext.type())
                              : std::string()) +
                         ", expected an IndexInfo (msgpack ext 8)");
      Leaf leaf;
      leaf.path = child;
      if (selectPrefix_.empty()) {
        leaf.selected = true;
        leaf.name = std::string(stripParamsPrefix(child));
      } else if (child.compare(0, selectPrefix_.size(), selectPrefix_) == 0) {
        leaf.selected = true;
        leaf.name = child.substr(selectPrefix_.size());
      }
      leafValues_.push_back(value);
      leaves_.push_back(std::move(leaf));
    }
    return true;
  }

  /// The msgpack payload of a nested object: a bin (how vmoe nests them
  /// inside ext 8, doc: "Ext codes") or, accepted as well, the ext itself
  /// or a str (bytes as msgpack packs them without use_bin_type).
  static bool nested(const Object &v, int8_t extCode, ByteSpan &out) {
    if (v.type == Type::BIN || v.type == Type::STR ||
        (v.type == Type::EXT && v.via.ext.type() == extCode)) {
      out = mp::bytes(v);
      return true;
    }
    return false;
  }

  static bool asSize(const Object &v, int64_t &out) {
    return mp::toInt64(v, out) && out >= 0;
  }

  /// Decodes a SliceNd payload (ext 6 / bin): array of Slice payloads
  /// (bin / ext 5), each [start, stop, step] with step nil (doc: ext 5, 6).
  bool decodeSliceNd(ByteSpan payload, SliceNd &out, std::string &why) {
    Document &doc = sliceDoc_;
    if (!doc.parse(payload, &why, options_.limits)) {
      why = "bad SliceNd: " + why;
      return false;
    }
    const Object &root = doc.root();
    if (root.type != Type::ARRAY) {
      why = "a SliceNd is not an array";
      return false;
    }
    if (mp::size(root) > options_.limits.maxRank) {
      why = "a SliceNd has " + std::to_string(mp::size(root)) +
            " axes (limit " + std::to_string(options_.limits.maxRank) + ")";
      return false;
    }
    out.clear();
    for (size_t a = 0; a < mp::size(root); ++a) {
      ByteSpan slicePayload;
      if (!nested(mp::item(root, a), kExtSlice, slicePayload)) {
        why = "axis " + std::to_string(a) + " of a SliceNd is not a Slice";
        return false;
      }
      Document &s = axisDoc_;
      if (!s.parse(slicePayload, &why, options_.limits)) {
        why = "bad Slice: " + why;
        return false;
      }
      const Object &r = s.root();
      if (r.type != Type::ARRAY || mp::size(r) != 3) {
        why = "a Slice is not [start, stop, step]";
        return false;
      }
      const Object &step = mp::item(r, 2);
      Range range;
      if (!asSize(mp::item(r, 0), range.start) ||
          !asSize(mp::item(r, 1), range.stop)) {
        why = "a Slice has a start or stop that is not a non-negative "
              "integer";
        return false;
      }
      if (!(step.type == Type::NIL ||
            (step.type == Type::POSITIVE_INTEGER && step.via.u64 == 1))) {
        why = "a Slice has a step other than nil (strided chunks are not "
              "part of the format)";
        return false;
      }
      out.push_back(range);
    }
    return true;
  }

  static bool dtypeFromName(std::string_view name, DType &type) {
    if (name == "float32")
      type = DType::F32;
    else if (name == "bfloat16")
      type = DType::BF16;
    else if (name == "float16")
      type = DType::F16;
    else if (name == "float64")
      type = DType::F64;
    else
      return false;
    return true;
  }

  static bool isDtypeName(const Object &v) {
    return v.type == Type::STR || v.type == Type::BIN;
  }

  bool decodeIndexInfo(Leaf &leaf) {
    const Object &ext = *leafValues_[&leaf - leaves_.data()];
    auto bad = [&](const std::string &what) {
      return failIndex("IndexInfo of " + quote(leaf.path) + ": " + what);
    };
    std::string why;
    Document &info = infoDoc_;
    if (!info.parse(mp::bytes(ext), &why, options_.limits))
      return bad(why);
    const Object &root = info.root();
    if (root.type != Type::ARRAY || mp::size(root) != 3)
      return bad("expected [ShapedArray, [SliceNd...], [shard...]]");
    // ShapedArray: [shape, dtype name, weak_type, named_shape] (doc: ext 4).
    ByteSpan shapedPayload;
    if (!nested(mp::item(root, 0), kExtShapedArray, shapedPayload))
      return bad("the ShapedArray is not a bin");
    Document &shaped = shapedDoc_;
    if (!shaped.parse(shapedPayload, &why, options_.limits))
      return bad("bad ShapedArray: " + why);
    const Object &sa = shaped.root();
    if (sa.type != Type::ARRAY || mp::size(sa) < 2 || mp::size(sa) > 4 ||
        mp::item(sa, 0).type != Type::ARRAY || !isDtypeName(mp::item(sa, 1)))
      return bad("the ShapedArray is not [shape, dtype, weak_type, {}]");
    const Object &shape = mp::item(sa, 0);
    if (mp::size(shape) > options_.limits.maxRank)
      return bad("rank " + std::to_string(mp::size(shape)) +
                 " exceeds the limit " +
                 std::to_string(options_.limits.maxRank));
    for (size_t i = 0; i < mp::size(shape); ++i) {
      int64_t d;
      if (!asSize(mp::item(shape, i), d))
        return bad("a dimension of the shape is not a non-negative integer");
      leaf.shape.push_back(d);
    }
    if (!elementCount(leaf.shape, leaf.numel))
      return bad("shape " + shapeString(leaf.shape) + " has too many elements");
    leaf.dtypeName = std::string(mp::text(mp::item(sa, 1)));
    if (!dtypeFromName(leaf.dtypeName, leaf.type)) {
      if (options_.skipNonFloat) {
        leaf.skipped = true;
        return true;
      }
      return failIndex(
          "tensor " + quote(leaf.path) + " has dtype " + quote(leaf.dtypeName) +
          "; only float32, bfloat16, float16 and float64 can be imported");
    }
    // Name and shape against the model before any data shard is opened.
    if (!checkExpected(options_, leaf.name, leaf.shape, why))
      return failIndex(why);
    if (options_.select && !options_.select(leaf.name, leaf.shape)) {
      leaf.skipped = true; // its shards are then not opened for it
      return true;
    }
    // Global slices and their shards.
    const Object &slices = mp::item(root, 1);
    const Object &shards = mp::item(root, 2);
    if (slices.type != Type::ARRAY || shards.type != Type::ARRAY)
      return bad("the slices or the shards are not arrays");
    if (mp::size(slices) != mp::size(shards))
      return bad(std::to_string(mp::size(slices)) + " slices but " +
                 std::to_string(mp::size(shards)) + " shard ids");
    uint64_t covered = 0;
    for (size_t i = 0; i < mp::size(slices); ++i) {
      ByteSpan payload;
      SliceNd s;
      if (!nested(mp::item(slices, i), kExtSliceNd, payload))
        return bad("slice " + std::to_string(i) + " is not a bin");
      if (!decodeSliceNd(payload, s, why))
        return bad(why);
      if (s.size() != leaf.shape.size())
        return bad("slice " + sliceString(s) + " has " +
                   std::to_string(s.size()) + " axes, the shape " +
                   shapeString(leaf.shape) + " has " +
                   std::to_string(leaf.shape.size()));
      uint64_t volume = 1;
      for (size_t a = 0; a < s.size(); ++a) {
        if (s[a].start > s[a].stop || s[a].stop > leaf.shape[a])
          return bad("slice " + sliceString(s) + " is outside the shape " +
                     shapeString(leaf.shape));
        volume *= uint64_t(s[a].stop - s[a].start); // <= numel: no overflow
      }
      if (detail::addOverflow(covered, volume, &covered) ||
          covered > leaf.numel)
        return bad("the slices hold more elements than the shape " +
                   shapeString(leaf.shape) + " (overlapping slices)");
      const Object &shard = mp::item(shards, i);
      int64_t shardId = 0;
      if (!asSize(shard, shardId) || uint64_t(shardId) >= shardCount_)
        return bad("the shard of slice " + sliceString(s) +
                   " is not in [0, shard_count = " +
                   std::to_string(shardCount_) + ")");
      if (!leaf.sliceIndex.emplace(s, leaf.slices.size()).second)
        return bad("slice " + sliceString(s) + " is listed twice");
      leaf.slices.push_back(std::move(s));
      leaf.shards.push_back(uint64_t(shardId));
    }
    if (covered != leaf.numel)
      return bad("the slices cover " + std::to_string(covered) + " of the " +
                 std::to_string(leaf.numel) + " elements of shape " +
                 shapeString(leaf.shape));
    leaf.chunks.resize(leaf.slices.size());
    return true;
  }

  // ---- the data shards -----------------------------------------------------

  bool readShards(const VmoeShardSource &source) {
    // Which shards hold selected chunks, and for which tensor (messages).
    std::map<uint64_t, const Leaf *> needed;
    for (const Leaf &leaf : leaves_)
      if (leaf.selected && !leaf.skipped)
        for (uint64_t s : leaf.shards)
          needed.emplace(s, &leaf);
    for (auto &[shard, leaf] : needed) {
      ByteSpan bytes;
      std::string name, why;
      if (!source(shard, shardCount_, bytes, name, &why))
        return fail("data shard " + std::to_string(shard) + " of " +
                    std::to_string(shardCount_) + " (it holds part of " +
                    quote(leaf->name) + "): " + why);
      if (!readShard(shard, bytes, name))
        return false;
    }
    // Every chunk the index lists must have been found.
    for (const Leaf &leaf : leaves_) {
      if (!leaf.selected || leaf.skipped)
        continue;
      for (size_t i = 0; i < leaf.chunks.size(); ++i)
        if (!leaf.chunks[i].found)
          return fail(shardNames_[leaf.shards[i]] + ": the chunk " +
                      sliceString(leaf.slices[i]) + " of " + quote(leaf.path) +
                      " is missing (the index places it in this shard)");
    }
    return true;
  }

  bool readShard(uint64_t shard, ByteSpan bytes, const std::string &name) {
    shardNames_[shard] = name;
    auto bad = [&](const std::string &what) {
      return fail(name + ": " + what);
    };
    // The chunks keep pointers into `bytes`, not into the document.
    Document doc;
    std::string why;
    if (!doc.parse(bytes, &why, options_.limits))
      return bad(why);
    const Object &root = doc.root();
    if (root.type != Type::MAP || !mp::find(root, kMagicKey))
      return bad("not a vmoe data shard (no '__msgpack_array_chunk_a87ca2__' "
                 "map)");
    if (!checkUniqueKeys(root, "the top-level map", name))
      return false;
    for (size_t k = 0; k < mp::size(root); ++k) {
      std::string_view key = mp::text(mp::key(root, k));
      if (key == kMagicKey)
        continue;
      // doc: ".data": the other keys are str(id).
      uint64_t id = 0;
      bool digits = !key.empty() && key.size() <= 18;
      for (char c : key) {
        if (c < '0' || c > '9')
          digits = false;
        else
          id = id * 10 + uint64_t(c - '0');
      }
      if (!digits)
        return bad("key " + quote(key) + " is not an array id");
      if (id >= leaves_.size())
        return bad("array id " + std::string(key) + " is past the " +
                   std::to_string(leaves_.size()) + " arrays of the index");
      Leaf &leaf = leaves_[id];
      if (!leaf.selected || leaf.skipped)
        continue;
      if (!readChunks(shard, leaf, mp::value(root, k), name))
        return false;
    }
    return true;
  }

  bool readChunks(uint64_t shard, Leaf &leaf, const Object &list,
                  const std::string &name) {
    auto bad = [&](const std::string &what) {
      return fail(name + ": " + quote(leaf.path) + ": " + what);
    };
    if (list.type != Type::ARRAY)
      return bad("the chunks are not an array");
    size_t itemSize = dtypeSize(leaf.type);
    std::string why;
    for (size_t c = 0; c < mp::size(list); ++c) {
      const Object &pair = mp::item(list, c);
      if (pair.type != Type::ARRAY || mp::size(pair) != 2 ||
          mp::item(pair, 0).type != Type::ARRAY)
        return bad("a chunk is not [[subchunk...], SliceNd]");
      ByteSpan slicePayload;
      SliceNd slice;
      if (!nested(mp::item(pair, 1), kExtSliceNd, slicePayload))
        return bad("a chunk's global slice is not a SliceNd (ext 6)");
      if (!decodeSliceNd(slicePayload, slice, why))
        return bad(why);
      auto it = leaf.sliceIndex.find(slice);
      if (it == leaf.sliceIndex.end())
        return bad("holds a chunk at " + sliceString(slice) +
                   " that the index does not list");
      size_t j = it->second;
      if (leaf.shards[j] != shard)
        return bad("holds the chunk " + sliceString(slice) +
                   " that the index places in shard " +
                   std::to_string(leaf.shards[j]));
      Chunk &chunk = leaf.chunks[j];
      if (chunk.found)
        return bad("holds the chunk " + sliceString(slice) + " twice");
      chunk.found = true;
      uint64_t volume = 1;
      for (const Range &r : slice)
        volume *= uint64_t(r.stop - r.start);
      uint64_t want = volume * itemSize, have = 0; // volume <= numel <= 2^62
      const Object &subchunks = mp::item(pair, 0);
      for (size_t s = 0; s < mp::size(subchunks); ++s) {
        const Object &sub = mp::item(subchunks, s);
        if (sub.type != Type::EXT || sub.via.ext.type() != kExtNdarray)
          return bad("a subchunk of " + sliceString(slice) +
                     " is not an ndarray (ext 1)");
        // flax ndarray: [shape, dtype name, C-order bytes] (doc: ext 1).
        Document &nd = ndDoc_;
        if (!nd.parse(mp::bytes(sub), &why, options_.limits))
          return bad("bad ndarray: " + why);
        const Object &r = nd.root();
        if (r.type != Type::ARRAY || mp::size(r) != 3 ||
            mp::item(r, 0).type != Type::ARRAY ||
            !isDtypeName(mp::item(r, 1)) ||
            !(mp::item(r, 2).type == Type::BIN ||
              mp::item(r, 2).type == Type::STR))
          return bad("an ndarray is not [shape, dtype, bytes]");
        if (mp::text(mp::item(r, 1)) != leaf.dtypeName)
          return bad("a subchunk has dtype " + quote(mp::text(mp::item(r, 1))) +
                     ", the index says " + quote(leaf.dtypeName));
        const Object &shape = mp::item(r, 0);
        uint64_t n = 1;
        for (size_t a = 0; a < mp::size(shape); ++a) {
          int64_t d;
          if (!asSize(mp::item(shape, a), d) ||
              detail::mulOverflow(n, uint64_t(d), &n))
            return bad("an ndarray has a bad shape");
        }
        const Object &data = mp::item(r, 2);
        uint64_t bytes;
        if (detail::mulOverflow(n, itemSize, &bytes) ||
            bytes != mp::bytes(data).size)
          return bad("an ndarray of " + std::to_string(n) + " elements holds " +
                     std::to_string(mp::bytes(data).size) + " bytes");
        if (detail::addOverflow(have, bytes, &have) || have > want)
          return bad("the subchunks of " + sliceString(slice) +
                     " hold more than the " + std::to_string(want) +
                     " bytes of the slice");
        chunk.pieces.push_back(mp::bytes(data));
      }
      if (have != want)
        return bad("the subchunks of " + sliceString(slice) + " hold " +
                   std::to_string(have) + " bytes, the slice needs " +
                   std::to_string(want));
    }
    return true;
  }

  // ---- reassembly
  // ------------------------------------------------------------

  bool assemble(TensorMap &out) {
    for (Leaf &leaf : leaves_) {
      if (!leaf.selected || leaf.skipped)
        continue;
      Tensor t;
      t.shape = leaf.shape;
      t.sourceType = leaf.type;
      // Bounded: the chunks, whose sizes were checked against the file
      // bytes, hold exactly numel elements.
      t.data.assign(size_t(leaf.numel), 0.0f);
      std::vector<bool> written(size_t(leaf.numel), false);
      for (size_t i = 0; i < leaf.slices.size(); ++i)
        if (!place(leaf, leaf.slices[i], leaf.chunks[i], t.data, written))
          return false;
      if (!detail::insertTensor(out, leaf.name, std::move(t), indexName_,
                                error_))
        return false;
      leaf.chunks.clear();
    }
    return true;
  }

  bool place(const Leaf &leaf, const SliceNd &slice, const Chunk &chunk,
             std::vector<float> &dst, std::vector<bool> &written) {
    size_t itemSize = dtypeSize(leaf.type);
    std::vector<uint8_t> joined;
    const uint8_t *src = nullptr;
    if (chunk.pieces.size() == 1) {
      src = chunk.pieces[0].data;
    } else {
      for (const ByteSpan &p : chunk.pieces)
        joined.insert(joined.end(), p.data, p.data + p.size);
      src = joined.data();
    }
    size_t rank = slice.size();
    if (rank == 0) {
      if (written[0])
        return failIndex("chunks of " + quote(leaf.path) + " overlap");
      written[0] = true;
      convertToFloat(leaf.type, src, 1, dst.data());
      return true;
    }
    std::vector<uint64_t> stride(rank, 1);
    for (size_t a = rank - 1; a > 0; --a)
      stride[a - 1] = stride[a] * uint64_t(leaf.shape[a]);
    uint64_t rowLength = uint64_t(slice[rank - 1].stop - slice[rank - 1].start);
    uint64_t rows = 1;
    for (size_t a = 0; a + 1 < rank; ++a)
      rows *= uint64_t(slice[a].stop - slice[a].start);
    if (rowLength == 0 || rows == 0)
      return true;
    std::vector<int64_t> index(rank, 0);
    for (size_t a = 0; a < rank; ++a)
      index[a] = slice[a].start;
    for (uint64_t row = 0; row < rows; ++row) {
      uint64_t offset = 0;
      for (size_t a = 0; a < rank; ++a)
        offset += uint64_t(index[a]) * stride[a];
      for (uint64_t k = 0; k < rowLength; ++k) {
        if (written[offset + k])
          return failIndex("chunks of " + quote(leaf.path) + " overlap at " +
                           sliceString(slice));
        written[offset + k] = true;
      }
      convertToFloat(leaf.type, src + row * rowLength * itemSize, rowLength,
                     dst.data() + offset);
      // Next row: odometer over the leading axes.
      for (size_t a = rank - 1; a-- > 0;) {
        if (++index[a] < slice[a].stop)
          break;
        index[a] = slice[a].start;
      }
    }
    return true;
  }

  const std::string &indexName_;
  const ReadOptions &options_;
  std::string *error_;
  Document indexDoc_;
  uint64_t shardCount_ = 0;
  bool versioned_ = true;
  std::string selectPrefix_;
  std::vector<Leaf> leaves_;
  std::vector<const Object *> leafValues_;
  std::map<uint64_t, std::string> shardNames_;
  // Scratch documents for the nested payloads, reused to spare allocations.
  Document infoDoc_, shapedDoc_, sliceDoc_, axisDoc_, ndDoc_;
};

} // namespace

bool readVmoeCheckpoint(ByteSpan index, const std::string &indexName,
                        const VmoeShardSource &shards, TensorMap &out,
                        std::string *error, const ReadOptions &options) {
  TensorMap result;
  Reader reader(indexName, options, error);
  if (!reader.run(index, shards, result))
    return false;
  for (auto &entry : result)
    if (!detail::insertTensor(out, entry.first, std::move(entry.second),
                              indexName, error))
      return false;
  return true;
}

bool readVmoeCheckpoint(const std::string &prefixOrIndex, TensorMap &out,
                        std::string *error, const ReadOptions &options) {
  std::string prefix = prefixOrIndex;
  constexpr std::string_view suffix = ".index";
  if (prefix.size() > suffix.size() &&
      prefix.compare(prefix.size() - suffix.size(), suffix.size(),
                     suffix.data()) == 0)
    prefix.resize(prefix.size() - suffix.size());
  std::string indexPath = prefix + ".index";
  detail::FileData indexFile;
  if (!indexFile.open(indexPath, error))
    return false;
  std::deque<detail::FileData> files;
  VmoeShardSource source = [&](uint64_t shard, uint64_t count, ByteSpan &bytes,
                               std::string &name, std::string *why) {
    name = vmoeShardPath(prefix, shard, count);
    files.emplace_back();
    if (!files.back().open(name, why))
      return false;
    bytes = files.back().bytes();
    return true;
  };
  return readVmoeCheckpoint(indexFile.bytes(), indexPath, source, out, error,
                            options);
}

} // namespace vmoe::readers
