//===- ModuleSchemaFuzzer.cpp - Mutate a module's metadata by its schema --===//
//
// The byte-level module targets mostly make FlatBuffers that the verifier's
// structural pass refuses. This target mutates the metadata through its
// schema instead (flatc's binary schema of format/schema/module.fbs, walked
// with FlatBuffers reflection): one field per mutation, an integer set to an
// edge value, a float to NaN or infinity, a string emptied, cut or garbled,
// a vector shortened or lengthened, and the module file rebuilt around the new
// FlatBuffer (header sizes, segment base). So the inputs stay well-formed
// FlatBuffers whose values lie, which is what the semantic checks of the
// loader (ModuleValidator*.cpp) must catch. The seeds are a module compiled
// by vmoe-compile (examples/tiny-vmoe.mlir) where the build has the
// compiler, and the runtime tests' modules.
//
// Every input the loader accepts gets a session and runs at the maximum
// batch and at batch 1. Without libFuzzer (the replay test), kReplayMutants
// schema mutations of each input are also loaded and given a session, so
// the mutator and the loader's checks it exercises are tested in every
// build.
//
//===----------------------------------------------------------------------===//

#include "vmoe/writer/ModuleDigests.h"
#include "vmoe/module_format.h"
#include "vmoe/module_generated.h"
#include "vmoe/runtime.h"

#include "flatbuffers/reflection.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr uint32_t kReplayMutants = 64;

const reflection::Schema &schema() {
  static const std::vector<uint8_t> bytes = [] {
    std::ifstream in(VMOE_MODULE_BFBS_PATH, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in),
                                std::istreambuf_iterator<char>());
  }();
  return *reflection::GetSchema(bytes.data());
}

// ---- the module file around the FlatBuffer --------------------------------

struct Layout {
  uint64_t fbOffset = 0, fbSize = 0, segmentBase = 0, segmentSize = 0;
};

bool layout(const uint8_t *data, size_t size, Layout &out) {
  vmoe_module_header_t h;
  if (size < sizeof(h))
    return false;
  memcpy(&h, data, sizeof(h));
  out = {h.flatbuffer_offset, h.flatbuffer_size, h.segment_base,
         h.segment_size};
  return out.fbOffset >= sizeof(h) && out.fbOffset <= size &&
         out.fbSize <= size - out.fbOffset &&
         out.fbOffset + out.fbSize <= out.segmentBase &&
         out.segmentBase <= size && out.segmentSize <= size - out.segmentBase;
}

/// Makes the file agree with its new FlatBuffer: the FlatBuffer in place,
/// the segments moved to the next 4096-byte boundary after it when it grew
/// past them, and the header's sizes and offsets rewritten. The hook where
/// the module's own integrity data is recomputed as the writer computes it
/// (issue #17's digests of the header, the FlatBuffer and each segment), so
/// that mutants reach the semantic checks behind them.
std::vector<uint8_t> sealModule(const uint8_t *data, const Layout &old,
                                const std::vector<uint8_t> &fb) {
  uint64_t fbEnd = old.fbOffset + fb.size();
  uint64_t base = old.segmentBase;
  if (fbEnd > base)
    base = (fbEnd + VMOE_SEGMENT_BASE_ALIGNMENT - 1) /
           VMOE_SEGMENT_BASE_ALIGNMENT * VMOE_SEGMENT_BASE_ALIGNMENT;
  std::vector<uint8_t> out(base + old.segmentSize, 0);
  memcpy(out.data(), data, old.fbOffset);
  memcpy(out.data() + old.fbOffset, fb.data(), fb.size());
  memcpy(out.data() + base, data + old.segmentBase, old.segmentSize);
  vmoe_module_header_t h;
  memcpy(&h, out.data(), sizeof(h));
  h.flatbuffer_size = fb.size();
  h.segment_base = base;
  h.file_size = out.size();
  memcpy(out.data(), &h, sizeof(h));
  // The segments are copied unchanged (their digests hold); the metadata
  // digest covers the edited FlatBuffer and header.
  std::string error;
  (void)vmoe::writer::resealMetadata(out.data(), out.size(), &error);
  return out;
}

// ---- mutation sites, found by walking the FlatBuffer with the schema -------

enum class SiteKind { Scalar, String, Vector };

struct Site {
  SiteKind kind;
  reflection::BaseType type; // the scalar's, or the vector element's
  uint8_t *address;          // scalar: the value; string, vector: the object
  const reflection::Object *element = nullptr; // vector of tables / structs
};

class Walker {
public:
  explicit Walker(std::vector<Site> &sites) : sites_(sites) {}

  void table(flatbuffers::Table &t, const reflection::Object &object,
             int depth) {
    if (depth > 16)
      return;
    for (const reflection::Field *field : *object.fields()) {
      reflection::BaseType type = field->type()->base_type();
      uint8_t *at = const_cast<uint8_t *>(t.GetAddressOf(field->offset()));
      if (!at)
        continue; // absent: nothing to mutate in place
      if (flatbuffers::IsScalar(type)) {
        sites_.push_back({SiteKind::Scalar, type, at});
      } else if (type == reflection::String) {
        sites_.push_back({SiteKind::String, type,
                          at + flatbuffers::ReadScalar<uint32_t>(at)});
      } else if (type == reflection::Obj) {
        const reflection::Object &child =
            *schema().objects()->Get(field->type()->index());
        if (child.is_struct())
          structure(at, child);
        else
          table(*flatbuffers::GetFieldT(t, *field), child, depth + 1);
      } else if (type == reflection::Vector) {
        vector(at + flatbuffers::ReadScalar<uint32_t>(at), *field->type(),
               depth);
      }
    }
  }

private:
  void structure(uint8_t *at, const reflection::Object &object) {
    for (const reflection::Field *field : *object.fields()) {
      reflection::BaseType type = field->type()->base_type();
      if (flatbuffers::IsScalar(type))
        sites_.push_back({SiteKind::Scalar, type, at + field->offset()});
      else if (type == reflection::Obj)
        structure(at + field->offset(),
                  *schema().objects()->Get(field->type()->index()));
    }
  }

  void vector(uint8_t *at, const reflection::Type &type, int depth) {
    reflection::BaseType element = type.element();
    const reflection::Object *object =
        element == reflection::Obj ? schema().objects()->Get(type.index())
                                   : nullptr;
    if (element == reflection::String)
      return; // no vector of strings in the schema
    sites_.push_back({SiteKind::Vector, element, at, object});
    uint32_t count = flatbuffers::ReadScalar<uint32_t>(at);
    uint8_t *items = at + sizeof(uint32_t);
    size_t size =
        flatbuffers::GetTypeSizeInline(element, type.index(), schema());
    for (uint32_t i = 0; i < count; ++i) {
      uint8_t *item = items + i * size;
      if (flatbuffers::IsScalar(element))
        sites_.push_back({SiteKind::Scalar, element, item});
      else if (object && object->is_struct())
        structure(item, *object);
      else if (object)
        table(*reinterpret_cast<flatbuffers::Table *>(
                  item + flatbuffers::ReadScalar<uint32_t>(item)),
              *object, depth + 1);
    }
  }

  std::vector<Site> &sites_;
};

// ---- one mutation ----------------------------------------------------------

int64_t edgeInteger(int64_t old, std::mt19937_64 &rng) {
  static const int64_t kEdges[] = {0,
                                   1,
                                   -1,
                                   2,
                                   3,
                                   7,
                                   63,
                                   64,
                                   4095,
                                   4096,
                                   INT32_MAX,
                                   INT32_MIN,
                                   int64_t(UINT32_MAX),
                                   int64_t(1) << 31,
                                   int64_t(1) << 32,
                                   int64_t(1) << 40,
                                   INT64_MAX,
                                   INT64_MIN};
  switch (rng() % 4) {
  case 0: // wrapping, as the field's width does
    return int64_t(uint64_t(old) + 1);
  case 1:
    return int64_t(uint64_t(old) - 1);
  case 2:
    return int64_t(uint64_t(old) ^ (uint64_t(1) << (rng() % 64)));
  default:
    return kEdges[rng() % (sizeof(kEdges) / sizeof(kEdges[0]))];
  }
}

double edgeFloat(std::mt19937_64 &rng) {
  static const double kEdges[] = {0.0,
                                  -0.0,
                                  -1.0,
                                  1e-30,
                                  1e30,
                                  65536.0,
                                  std::numeric_limits<double>::infinity(),
                                  -std::numeric_limits<double>::infinity(),
                                  std::numeric_limits<double>::quiet_NaN()};
  return kEdges[rng() % (sizeof(kEdges) / sizeof(kEdges[0]))];
}

/// Rewrites a string in place (flatbuffers::SetString, which resizes the
/// buffer, reads freed memory in FlatBuffers 2.0.8 under ASan): emptied,
/// cut in half, a byte set to 0xff, '/' or NUL, or every byte to 'A'. The
/// terminating NUL a FlatBuffers string needs is kept.
void mutateString(uint8_t *at, std::mt19937_64 &rng) {
  uint32_t length = flatbuffers::ReadScalar<uint32_t>(at);
  uint8_t *chars = at + sizeof(uint32_t);
  uint32_t pick = length ? uint32_t(rng() % length) : 0;
  switch (length ? rng() % 6 : 0) {
  case 0:
    flatbuffers::WriteScalar<uint32_t>(at, 0);
    chars[0] = 0;
    return;
  case 1:
    flatbuffers::WriteScalar<uint32_t>(at, length / 2);
    chars[length / 2] = 0;
    return;
  case 2:
    chars[pick] = 0xff;
    return;
  case 3:
    chars[pick] = '/';
    return;
  case 4:
    chars[pick] = 0;
    return;
  default:
    memset(chars, 'A', length);
    return;
  }
}

/// Mutates one field of `fb` (a valid module FlatBuffer). False when there
/// was nothing to mutate.
bool mutateField(std::vector<uint8_t> &fb, std::mt19937_64 &rng) {
  std::vector<Site> sites;
  Walker walker(sites);
  walker.table(*flatbuffers::GetAnyRoot(fb.data()), *schema().root_table(), 0);
  if (sites.empty())
    return false;
  const Site &site = sites[rng() % sites.size()];
  switch (site.kind) {
  case SiteKind::Scalar:
    if (site.type == reflection::Float || site.type == reflection::Double)
      flatbuffers::SetAnyValueF(site.type, site.address, edgeFloat(rng));
    else
      flatbuffers::SetAnyValueI(
          site.type, site.address,
          edgeInteger(flatbuffers::GetAnyValueI(site.type, site.address), rng));
    return true;
  case SiteKind::String:
    mutateString(site.address, rng);
    return true;
  case SiteKind::Vector: {
    auto *vec = reinterpret_cast<flatbuffers::VectorOfAny *>(site.address);
    uint32_t count = vec->size();
    bool isTable = site.element && !site.element->is_struct();
    uint32_t size = uint32_t(
        site.element && site.element->is_struct()
            ? site.element->bytesize()
            : flatbuffers::GetTypeSize(isTable ? reflection::Obj : site.type));
    if (isTable)
      size = sizeof(uint32_t);
    // Shorter (to empty, or by one), or one longer: a copy of the first
    // element (for tables, a second reference to the same table).
    uint32_t newCount =
        rng() % 2 && count ? (rng() % 2 ? 0 : count - 1) : count + 1;
    if (newCount > count && count == 0)
      newCount = 0; // nothing to copy
    if (newCount == count)
      return false;
    size_t at = site.address - fb.data();
    uint8_t *added =
        flatbuffers::ResizeAnyVector(schema(), newCount, vec, count, size, &fb);
    if (newCount > count) {
      uint8_t *first = fb.data() + at + sizeof(uint32_t);
      if (isTable) {
        uint8_t *target = first + flatbuffers::ReadScalar<uint32_t>(first);
        flatbuffers::WriteScalar<uint32_t>(added, uint32_t(target - added));
      } else {
        memcpy(added, first, size);
      }
    }
    return true;
  }
  }
  return false;
}

/// A schema mutation of module `data`: the new file in `out`. False when
/// the input is not a module whose FlatBuffer passes the schema's verifier.
bool mutateModule(const uint8_t *data, size_t size, std::mt19937_64 &rng,
                  std::vector<uint8_t> &out) {
  Layout l;
  if (!layout(data, size, l))
    return false;
  std::vector<uint8_t> fb(data + l.fbOffset, data + l.fbOffset + l.fbSize);
  // The generated verifier first: the reflection verifier of Debian's
  // FlatBuffers can itself read out of bounds on some malformed buffers
  // (a libFuzzer run from seed 1 crashed inside its VerifyObject).
  flatbuffers::Verifier verifier(fb.data(), fb.size(),
                                 VMOE_MAX_FLATBUFFER_DEPTH, 1000000);
  if (!vmoe::fb::VerifyModuleBuffer(verifier))
    return false;
  if (!flatbuffers::Verify(schema(), *schema().root_table(), fb.data(),
                           fb.size(), VMOE_MAX_FLATBUFFER_DEPTH, 1000000))
    return false;
  if (!mutateField(fb, rng))
    return false;
  out = sealModule(data, l, fb);
  return true;
}

// ---- loading and running ---------------------------------------------------

void runAtBatch(vmoe_session_t *session, vmoe_module_t *module, int64_t batch) {
  vmoe_module_info_t info;
  vmoe_module_info(module, &info);
  vmoe_message_t message;
  std::vector<vmoe_tensor_t> tensors(info.input_count + info.output_count);
  std::vector<std::vector<int64_t>> shapes(tensors.size());
  std::vector<std::vector<uint8_t>> buffers(tensors.size());
  for (uint32_t i = 0; i < tensors.size(); ++i) {
    bool input = i < info.input_count;
    vmoe_tensor_info_t t;
    if ((input ? vmoe_module_input_info(module, i, &t, &message)
               : vmoe_module_output_info(module, i - info.input_count, &t,
                                         &message)) != VMOE_STATUS_OK)
      return;
    shapes[i].assign(t.shape, t.shape + t.rank);
    uint64_t bytes = t.size_bytes;
    if (t.batch_dim >= 0 && shapes[i][t.batch_dim] > 0) {
      bytes = bytes / uint64_t(shapes[i][t.batch_dim]) * uint64_t(batch);
      shapes[i][t.batch_dim] = batch;
    }
    if (bytes > (uint64_t(64) << 20))
      return; // a forged giant signature: the runtime checks it at run
    buffers[i].assign(bytes, 0);
    for (uint64_t j = 0; j + 4 <= bytes; j += 4) {
      float v = float(int(j % 251) - 125) / 128.0f;
      memcpy(buffers[i].data() + j, &v, 4);
    }
    tensors[i] = {t.dtype, t.rank, shapes[i].data(), buffers[i].data(), bytes};
  }
  (void)vmoe_session_run(session, tensors.data(), info.input_count,
                         tensors.data() + info.input_count, info.output_count,
                         nullptr, &message);
}

/// Loads `data` and creates a session; with `run`, runs it at the maximum
/// batch and at batch 1.
void loadAndRun(const uint8_t *data, size_t size, bool run) {
  vmoe_module_t *module = nullptr;
  vmoe_message_t message;
  if (vmoe_module_load_memory(data, size, VMOE_MEMORY_COPY, &module,
                              &message) != VMOE_STATUS_OK)
    return;
  vmoe_session_options_t options;
  vmoe_session_options_init(&options);
  options.thread_count = 1;
  vmoe_session_t *session = nullptr;
  if (vmoe_session_create(module, &options, &session, &message) ==
      VMOE_STATUS_OK) {
    vmoe_module_info_t info;
    vmoe_module_info(module, &info);
    if (run) {
      runAtBatch(session, module, info.max_batch);
      runAtBatch(session, module, 1);
    }
    vmoe_session_destroy(session);
  }
  vmoe_module_release(module);
}

} // namespace

#ifdef VMOE_LIBFUZZER
extern "C" size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t maxSize);

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size,
                                          size_t maxSize, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out;
  // One to three fields at a time.
  std::vector<uint8_t> current(data, data + size);
  for (unsigned n = 1 + rng() % 3; n > 0; --n) {
    if (!mutateModule(current.data(), current.size(), rng, out))
      break;
    current.swap(out);
  }
  if (current.size() == size && memcmp(current.data(), data, size) == 0) {
    // Not a module with a valid FlatBuffer: bytes of its metadata only (the
    // code and weights are the digests' to guard, not this target's).
    Layout l;
    if (!layout(data, size, l) || l.segmentBase >= size)
      return LLVMFuzzerMutate(data, size, maxSize);
    size_t mutated = LLVMFuzzerMutate(data, l.segmentBase, l.segmentBase);
    memset(data + mutated, 0, l.segmentBase - mutated);
    return size;
  }
  if (current.size() > maxSize)
    return size;
  memcpy(data, current.data(), current.size());
  return current.size();
}
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  loadAndRun(data, size, true);
#ifndef VMOE_LIBFUZZER
  // The replay test: the schema mutants of this input too, loaded and given
  // a session (the loader's checks, what these mutants are made for).
  // Running them is libFuzzer's part: a module's compiled kernels trust
  // the arena layout of their bindings, which the verifier cannot prove
  // (docs/bad-inputs.md, "Trust model").
  std::mt19937_64 rng(size);
  std::vector<uint8_t> mutant;
  for (uint32_t i = 0; i < kReplayMutants; ++i)
    if (mutateModule(data, size, rng, mutant))
      loadAndRun(mutant.data(), mutant.size(), false);
#endif
  return 0;
}
