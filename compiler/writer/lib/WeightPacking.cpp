//===- WeightPacking.cpp - weights in the layout the kernels read ---------===//

#include "vmoe/writer/WeightPacking.h"

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
  int64_t rows = spec.layout == PackLayout::Bias ? 1 : spec.k;
  if (spec.layout != PackLayout::Copy && double(spec.batch) * double(rows) *
                                                 double(ceilDiv(n, spec.nr)) *
                                                 double(spec.nr) >
                                             double(kMax))
    return fail("the packed weight has more than 2^40 elements");
  if (spec.kPairs &&
      (!spec.bf16 || spec.k % 2 != 0 || spec.layout != PackLayout::Panels))
    return fail("k pairs need bf16 panels and an even K");
  if (spec.bf16 && spec.layout != PackLayout::Panels)
    return fail("only panels are stored as bf16");
  return true;
}

uint64_t sourceElements(const PackSpec &spec, size_t i) {
  switch (spec.layout) {
  case PackLayout::Copy:
    return uint64_t(spec.widths[i]);
  case PackLayout::Panels:
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
           (spec.bf16 ? 2 : 4);
  case PackLayout::Bias:
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

void packWeights(const PackSpec &spec,
                 const std::vector<const float *> &sources,
                 std::vector<uint8_t> &out) {
  out.assign(packedBytes(spec), 0);
  int64_t n = totalWidth(spec);
  switch (spec.layout) {
  case PackLayout::Copy:
    std::memcpy(out.data(), sources[0], out.size());
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
