//===- WeightPacking.cpp - weights in the layout the kernels read ---------===//

#include "vmoe/writer/WeightPacking.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace vmoe {
namespace writer {

uint16_t floatToBf16Bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

static int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

float quantizeInt8Column(const float *column, int64_t k, int64_t stride,
                         int8_t *q) {
  float amax = 0.0f;
  for (int64_t i = 0; i < k; ++i)
    amax = std::max(amax, std::fabs(column[i * stride]));
  float scale = amax == 0.0f ? 1.0f : amax / 127.0f;
  if (q)
    for (int64_t i = 0; i < k; ++i) {
      float r = std::nearbyint(column[i * stride] / scale);
      q[i] = static_cast<int8_t>(std::clamp(r, -127.0f, 127.0f));
    }
  return scale;
}

static bool isPerColumn(PackLayout layout) {
  return layout == PackLayout::Bias || layout == PackLayout::Int8Scales ||
         layout == PackLayout::Int8ColSums;
}

static int64_t totalWidth(const PackSpec &spec) {
  int64_t n = 0;
  for (int64_t w : spec.widths)
    n += w;
  return n;
}

bool checkPackSpec(const PackSpec &spec, std::string *error) {
  auto fail = [&](const std::string &what) {
    *error = "bad weight packing: " + what;
    return false;
  };
  if (spec.widths.empty())
    return fail("no source");
  if (spec.layout == PackLayout::Copy && spec.widths.size() != 1)
    return fail("a copy has one source");
  // Bounded so that no product below overflows: 2^40 elements is far past
  // any single tensor of the paper's models.
  const int64_t kMax = int64_t(1) << 40;
  int64_t n = 0;
  for (int64_t w : spec.widths) {
    if (w < 1 || w > kMax)
      return fail("a source width is not in [1, 2^40]");
    n += w;
  }
  if (spec.batch < 1 || spec.k < 1 || spec.nr < 1 || spec.batch > kMax ||
      spec.k > kMax || spec.nr > 4096 || n > kMax)
    return fail("batch, k or nr out of range");
  int64_t rows = isPerColumn(spec.layout) ? 1 : spec.k;
  if (spec.layout != PackLayout::Copy && double(spec.batch) * double(rows) *
                                                 double(ceilDiv(n, spec.nr)) *
                                                 double(spec.nr) >
                                             double(kMax))
    return fail("the packed weight has more than 2^40 elements");
  if (spec.kPairs && (spec.k % 2 != 0 || spec.layout != PackLayout::Panels))
    return fail("k pairs need panels and an even K");
  if (spec.bf16 && spec.layout != PackLayout::Panels)
    return fail("only panels are stored as bf16");
  if (spec.int8 &&
      (spec.bf16 || spec.layout != PackLayout::Panels ||
       spec.kPairs == spec.kQuads || spec.k % (spec.kQuads ? 4 : 2) != 0))
    return fail("int8 panels need k pairs or k quads and a K that is a "
                "multiple of the group");
  if (spec.kQuads && !spec.int8)
    return fail("k quads are int8 panels");
  if (spec.kPairs && !spec.bf16 && !spec.int8)
    return fail("k pairs need bf16 or int8 panels");
  return true;
}

uint64_t sourceElements(const PackSpec &spec, size_t i) {
  switch (spec.layout) {
  case PackLayout::Copy:
    return uint64_t(spec.widths[i]);
  case PackLayout::Panels:
  case PackLayout::Int8Scales:
  case PackLayout::Int8ColSums:
    return uint64_t(spec.batch) * spec.k * spec.widths[i];
  case PackLayout::Bias:
    break;
  }
  return uint64_t(spec.batch) * spec.widths[i];
}

uint64_t packedBytes(const PackSpec &spec) {
  int64_t n = totalWidth(spec);
  switch (spec.layout) {
  case PackLayout::Copy:
    return uint64_t(n) * 4;
  case PackLayout::Panels:
    return uint64_t(spec.batch) * ceilDiv(n, spec.nr) * spec.k * spec.nr *
           (spec.int8   ? 1
            : spec.bf16 ? 2
                        : 4);
  case PackLayout::Bias:
  case PackLayout::Int8Scales:
  case PackLayout::Int8ColSums:
    break;
  }
  return uint64_t(spec.batch) * ceilDiv(n, spec.nr) * spec.nr * 4;
}

/// Column j of the side-by-side matrix: (source, column in it).
static void columnSources(const PackSpec &spec, std::vector<int> &source,
                          std::vector<int64_t> &column) {
  for (size_t i = 0; i < spec.widths.size(); ++i)
    for (int64_t j = 0; j < spec.widths[i]; ++j) {
      source.push_back(int(i));
      column.push_back(j);
    }
}

template <typename T, typename Convert>
static void packPanels(const PackSpec &spec,
                       const std::vector<const float *> &sources, T *out,
                       Convert convert) {
  int64_t n = totalWidth(spec), nr = spec.nr, k = spec.k;
  int64_t panels = ceilDiv(n, nr);
  std::vector<int> source;
  std::vector<int64_t> column;
  columnSources(spec, source, column);
  for (int64_t e = 0; e < spec.batch; ++e)
    for (int64_t p = 0; p < panels; ++p)
      for (int64_t kk = 0; kk < k; ++kk)
        for (int64_t l = 0; l < nr && p * nr + l < n; ++l) {
          // (p, kk, l), or in pairs (p, kk / 2, 2 l + kk % 2): the same
          // panel, so the offsets differ only inside it.
          int64_t inPanel =
              spec.kPairs ? (kk / 2) * 2 * nr + 2 * l + kk % 2 : kk * nr + l;
          int64_t j = p * nr + l;
          int64_t width = spec.widths[source[j]];
          out[(e * panels + p) * k * nr + inPanel] =
              convert(sources[source[j]][(e * k + kk) * width + column[j]]);
        }
}

/// Int8 panels, scales or column sums: each column of each batch entry is
/// quantized once, then placed where the layout puts it.
static void packInt8(const PackSpec &spec,
                     const std::vector<const float *> &sources, uint8_t *out) {
  int64_t n = totalWidth(spec), nr = spec.nr, k = spec.k;
  int64_t panels = ceilDiv(n, nr), group = spec.kQuads ? 4 : 2;
  std::vector<int> source;
  std::vector<int64_t> column;
  columnSources(spec, source, column);
  std::vector<int8_t> q(k);
  for (int64_t e = 0; e < spec.batch; ++e)
    for (int64_t j = 0; j < n; ++j) {
      int64_t width = spec.widths[source[j]];
      const float *col = sources[source[j]] + e * k * width + column[j];
      bool values = spec.layout != PackLayout::Int8Scales;
      float scale = quantizeInt8Column(col, k, width, values ? q.data() : 0);
      int64_t at = e * panels * nr + j;
      if (spec.layout == PackLayout::Int8Scales) {
        std::memcpy(out + at * 4, &scale, 4);
        continue;
      }
      if (spec.layout == PackLayout::Int8ColSums) {
        int32_t sum = 0;
        for (int8_t v : q)
          sum += v;
        std::memcpy(out + at * 4, &sum, 4);
        continue;
      }
      // (p, kk / g, g l + kk % g) inside the batch entry's panels.
      int64_t p = j / nr, l = j % nr;
      int8_t *panel =
          reinterpret_cast<int8_t *>(out) + (e * panels + p) * k * nr;
      for (int64_t kk = 0; kk < k; ++kk)
        panel[(kk / group) * group * nr + group * l + kk % group] = q[kk];
    }
}

void packWeights(const PackSpec &spec,
                 const std::vector<const float *> &sources,
                 std::vector<uint8_t> &out) {
  out.assign(packedBytes(spec), 0);
  int64_t n = totalWidth(spec);
  if (spec.int8 || spec.layout == PackLayout::Int8Scales ||
      spec.layout == PackLayout::Int8ColSums) {
    packInt8(spec, sources, out.data());
    return;
  }
  switch (spec.layout) {
  case PackLayout::Copy:
    std::memcpy(out.data(), sources[0], out.size());
    return;
  case PackLayout::Int8Scales:
  case PackLayout::Int8ColSums:
    return;
  case PackLayout::Panels:
    if (spec.bf16)
      packPanels(spec, sources, reinterpret_cast<uint16_t *>(out.data()),
                 floatToBf16Bits);
    else
      packPanels(spec, sources, reinterpret_cast<float *>(out.data()),
                 [](float v) { return v; });
    return;
  case PackLayout::Bias:
    break;
  }
  auto *padded = reinterpret_cast<float *>(out.data());
  int64_t stride = ceilDiv(n, spec.nr) * spec.nr;
  for (int64_t e = 0; e < spec.batch; ++e) {
    int64_t j = 0;
    for (size_t i = 0; i < spec.widths.size(); ++i)
      for (int64_t c = 0; c < spec.widths[i]; ++c)
        padded[e * stride + j++] = sources[i][e * spec.widths[i] + c];
  }
}

} // namespace writer
} // namespace vmoe
