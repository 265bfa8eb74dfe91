//===- Reference.h - Reference evaluator for V-MoE inference ----*- C++ -*-===//
//
// Plain C++17 loops that compute every V-MoE inference op on concrete float
// tensors, following docs/vmoe-reference.md (google-research/vmoe semantics).
// This is the independent oracle that compiled code is tested against, so the
// code favours clarity over speed and depends on the standard library only.
//
// Numerics: tensors hold float32 (the model's dtype). Every op reads float
// inputs, accumulates in double, and rounds its result to float once, so each
// op's output is (nearly) the correctly rounded value of its formula. Real f32
// implementations (JAX, the compiled kernels) differ from it by their own
// rounding; compare values with tolerances, routing decisions exactly.
//
// Errors: the conditions that upstream raises ValueError for (capacity < 1,
// group_size not dividing the tokens, capacity > S for expert choice, ...)
// come back as a Result holding an error message. Shape mismatches between
// arguments are programming errors of the caller and abort with a message.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TESTS_SUPPORT_REFERENCE_REFERENCE_H
#define VMOE_TESTS_SUPPORT_REFERENCE_REFERENCE_H

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vmoe::reference {

//===----------------------------------------------------------------------===//
// Checks and results
//===----------------------------------------------------------------------===//

/// Prints "file:line: reference check failed: message" and aborts. Used for
/// caller bugs (shape mismatches); active in every build type because the
/// oracle must never silently compute garbage.
[[noreturn]] void fatal(const char *file, int line, const std::string &message);

#define VMOE_REF_CHECK(cond, message)                                          \
  do {                                                                         \
    if (!(cond))                                                               \
      ::vmoe::reference::fatal(__FILE__, __LINE__, (message));                 \
  } while (false)

/// An error message, convertible to any Result<T>.
struct Error {
  std::string message;
};

/// Either a value or an Error. Exceptions are avoided so that the library
/// also links into targets built with -fno-exceptions.
template <typename T> class [[nodiscard]] Result {
public:
  Result(T value) : storage(std::move(value)) {}
  Result(Error error) : message(std::move(error.message)) {}

  bool ok() const { return storage.has_value(); }
  explicit operator bool() const { return ok(); }
  /// The error message; empty when ok().
  const std::string &error() const { return message; }
  /// The error, to propagate it into a Result of another type.
  Error takeError() const { return Error{message}; }

  T &value() & {
    VMOE_REF_CHECK(ok(), "value() of an error Result: " + message);
    return *storage;
  }
  const T &value() const & {
    VMOE_REF_CHECK(ok(), "value() of an error Result: " + message);
    return *storage;
  }
  T &&value() && {
    VMOE_REF_CHECK(ok(), "value() of an error Result: " + message);
    return std::move(*storage);
  }
  T &operator*() & { return value(); }
  const T &operator*() const & { return value(); }
  T *operator->() { return &value(); }
  const T *operator->() const { return &value(); }

private:
  std::optional<T> storage;
  std::string message;
};

//===----------------------------------------------------------------------===//
// Tensors
//===----------------------------------------------------------------------===//

/// Number of elements of a shape (1 for rank 0). Aborts on negative dims.
int64_t numElementsOf(const std::vector<int64_t> &shape);
/// "(2, 3, 4)", for messages.
std::string shapeToString(const std::vector<int64_t> &shape);

/// A dense row-major tensor: a shape and its elements, nothing else.
template <typename T> struct BasicTensor {
  std::vector<int64_t> shape;
  std::vector<T> data;

  BasicTensor() = default;
  /// A zero-filled tensor of the given shape.
  explicit BasicTensor(std::vector<int64_t> shape)
      : shape(std::move(shape)), data(numElementsOf(this->shape), T()) {}
  /// A tensor with the given elements (row-major); sizes must agree. (There
  /// is deliberately no (shape, fill) constructor: `Tensor({2}, {5.0f})`
  /// would silently pick it.)
  BasicTensor(std::vector<int64_t> shape, std::vector<T> data)
      : shape(std::move(shape)), data(std::move(data)) {
    VMOE_REF_CHECK(numElementsOf(this->shape) ==
                       static_cast<int64_t>(this->data.size()),
                   "tensor of shape " + shapeToString(this->shape) + " given " +
                       std::to_string(this->data.size()) + " elements");
  }
  static BasicTensor filled(std::vector<int64_t> shape, T value) {
    BasicTensor t(std::move(shape));
    for (T &element : t.data)
      element = value;
    return t;
  }

  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  /// Size of dimension `i`; a negative `i` counts from the back.
  int64_t dim(int64_t i) const {
    int64_t index = i < 0 ? i + rank() : i;
    VMOE_REF_CHECK(index >= 0 && index < rank(), "dim " + std::to_string(i) +
                                                     " of shape " +
                                                     shapeToString(shape));
    return shape[index];
  }
  int64_t numElements() const { return static_cast<int64_t>(data.size()); }

  /// Row-major offset of a full index; every index is bounds checked.
  template <typename... Index> int64_t offset(Index... index) const {
    std::array<int64_t, sizeof...(Index)> indices{
        static_cast<int64_t>(index)...};
    VMOE_REF_CHECK(static_cast<int64_t>(indices.size()) == rank(),
                   "index of rank " + std::to_string(indices.size()) +
                       " into shape " + shapeToString(shape));
    int64_t result = 0;
    for (size_t d = 0; d < indices.size(); ++d) {
      VMOE_REF_CHECK(indices[d] >= 0 && indices[d] < shape[d],
                     "index " + std::to_string(indices[d]) + " out of range " +
                         "in dim " + std::to_string(d) + " of shape " +
                         shapeToString(shape));
      result = result * shape[d] + indices[d];
    }
    return result;
  }
  template <typename... Index> T &at(Index... index) {
    return data[offset(index...)];
  }
  template <typename... Index> const T &at(Index... index) const {
    return data[offset(index...)];
  }

  /// The same elements under another shape of equal size.
  BasicTensor reshaped(std::vector<int64_t> newShape) const {
    VMOE_REF_CHECK(numElementsOf(newShape) == numElements(),
                   "cannot reshape " + shapeToString(shape) + " to " +
                       shapeToString(newShape));
    return BasicTensor(std::move(newShape), data);
  }
};

using Tensor = BasicTensor<float>;
using IntTensor = BasicTensor<int32_t>;

//===----------------------------------------------------------------------===//
// Scalar numerics
//===----------------------------------------------------------------------===//

/// float -> bfloat16 bits with round-to-nearest-even; NaN stays NaN (quiet,
/// sign kept), overflow rounds to infinity, subnormals are kept (no flush),
/// like ml_dtypes / jnp.astype(bfloat16).
uint16_t floatToBf16Bits(float value);
/// bfloat16 bits -> float (exact).
float bf16BitsToFloat(uint16_t bits);
/// float -> bf16 -> float.
float roundToBf16(float value);
Tensor roundToBf16(const Tensor &x);

/// GELU, tanh form (flax nn.gelu = jax.nn.gelu(approximate=True)):
/// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
float gelu(float x);
Tensor gelu(const Tensor &x);

/// Softmax over the last axis (max-subtracted, as jax.nn.softmax).
Tensor softmaxLastAxis(const Tensor &x);

/// Python's round(): nearest integer, halves to even.
double roundHalfToEven(double value);

/// What vmoe's value_range(-1, 1) does to one uint8 pixel, in float32:
/// (x / 255) then -1 + 2 * that.
float valueRangeMinusOneOne(uint8_t pixel);

//===----------------------------------------------------------------------===//
// int8 GEMMs (vmoe-compile --expert-math=int8, --dense-math=int8)
//===----------------------------------------------------------------------===//
//
// The fixed numerics that the compiled int8 kernels implement too:
//   weights W (K, N), per output channel n: scale_w[n] = int8Scale(max_k
//     |W[k, n]|), qw[k, n] = quantizeInt8(W[k, n], scale_w[n]);
//   activations X (M, K), per row m: scale_x[m] = int8Scale(max_k |X[m, k]|),
//     qx[m, k] = quantizeInt8(X[m, k], scale_x[m]);
//   acc[m, n] = sum_k qx[m, k] * qw[k, n] in int32 (exact);
//   y[m, n] = ((float)acc[m, n] * scale_x[m]) * scale_w[n] + bias[n], each
//     step a float32 operation of its own (no FMA).
// Unlike the f32 ops (double accumulation), every step here is exactly what
// a correct kernel computes, so compiled int8 results differ from these only
// through the f32 ops that follow.

using Int8Tensor = BasicTensor<int8_t>;

/// How a GEMM multiplies: f32 (as the rest of this file), or the int8
/// numerics above.
enum class GemmMath { F32, Int8 };

/// amax / 127.0f in float32; 1.0f for amax == 0 (an all-zero row or channel
/// quantizes to zeros). amax must be finite and >= 0.
float int8Scale(float amax);
/// clamp(nearbyint(value / scale), -127, 127): a float32 division (not a
/// multiplication by 1/scale), halves to even. Finite inputs only.
int8_t quantizeInt8(float value, float scale);

/// Quantized values and their scales.
struct Int8Quantized {
  Int8Tensor values;
  Tensor scales;
};
/// Per output channel: kernel (K, N) -> values (K, N), scales (N).
Int8Quantized quantizeWeightsInt8(const Tensor &kernel);
/// Per row: x (..., K) -> values (..., K), scales (...).
Int8Quantized quantizeRowsInt8(const Tensor &x);
/// Exact int32 products x (..., K) @ w (K, N) -> (..., N). Aborts when K is
/// large enough for an int32 accumulator to overflow.
IntTensor int8MatMul(const Int8Tensor &x, const Int8Tensor &w);
/// ((float)acc * rowScales[m]) * channelScales[n] (+ bias[n]); acc (..., N),
/// rowScales with one scale per row, channelScales (N). A default-constructed
/// bias means none.
Tensor int8Epilogue(const IntTensor &acc, const Tensor &rowScales,
                    const Tensor &channelScales, const Tensor &bias);
/// The int8 dense layer: quantize x per row and kernel (In, Out) per output
/// channel, multiply, epilogue with bias.
Tensor denseInt8(const Tensor &x, const Tensor &kernel, const Tensor &bias);

//===----------------------------------------------------------------------===//
// Capacity (reference section 6)
//===----------------------------------------------------------------------===//

enum class CapacityRounding { Ceil, Round };

/// vmoe.moe.compute_capacity: v = (numTokens * capacityFactor) / numExperts in
/// double, left to right; ceil(v) or Python round(v) (half to even); error if
/// that is < 1; then rounded up to a multiple of `multipleOf` when > 0.
Result<int64_t>
computeCapacity(int64_t numTokens, int64_t numExperts, double capacityFactor,
                int64_t multipleOf = 4,
                CapacityRounding rounding = CapacityRounding::Ceil);

//===----------------------------------------------------------------------===//
// Routing (reference section 5)
//===----------------------------------------------------------------------===//

/// Router gates: softmax_e(x @ kernel), no bias, no noise (inference).
/// x is (..., D) (normally (G, S, D)), kernel (D, E); result (..., E).
Tensor routerGates(const Tensor &x, const Tensor &kernel);

/// Top-k along the last axis, like jax.lax.top_k: values in descending order,
/// ties go to the lower index. NaN inputs are rejected (abort).
struct TopK {
  Tensor values;     // (..., k)
  IntTensor indices; // (..., k)
};
TopK topK(const Tensor &x, int64_t k);

/// The order in which the tokens of group `group` claim slots: token order,
/// or with Batch Prioritized Routing a stable sort by descending top-1 gate
/// (`topValues` (G, S, K), column 0). Ties keep token order; -0.0 == 0.0.
std::vector<int64_t> tokenOrder(const Tensor &topValues, int64_t group,
                                bool batchPriority);

/// Token-choice slot assignment (reference section 5.1).
struct SlotAssignment {
  /// (G, S, K): position in the chosen expert's queue; may be >= capacity,
  /// because the counters keep counting past it.
  IntTensor positions;
  /// (G, S, K): the slot, or -1 when the assignment is dropped (pos >= C).
  IntTensor slots;
  /// (G, E): assignments each expert received, including dropped ones.
  IntTensor expertCounts;
};
/// k-major greedy loop: all first choices (in tokenOrder), then all second
/// choices, ...; one counter per (group, expert) that never stops.
/// `numValidTokens` >= 0: only the first numValidTokens tokens of the
/// flattened (G, S) are real; the rest are padding that is never routed
/// (position and slot -1, no count).
SlotAssignment assignSlots(const Tensor &topValues, const IntTensor &topIndices,
                           int64_t numExperts, int64_t capacity,
                           bool batchPriority, int64_t numValidTokens = -1);

/// Routing of one MoE layer in a per-token form common to token choice and
/// expert choice, plus the per-slot table. A = K for token choice (assignment
/// j = the j-th best expert), A = E for expert choice (assignment j =
/// expert j).
struct Routing {
  int64_t numExperts = 0;
  int64_t capacity = 0;
  /// (G, S, A): expert of each assignment.
  IntTensor experts;
  /// (G, S, A): token choice: position in the expert's queue (may be >= C);
  /// expert choice: the slot, or -1 when the expert did not pick the token.
  IntTensor positions;
  /// (G, S, A): the slot when the assignment is kept, else -1.
  IntTensor slots;
  /// (G, S, A): the gate of the (token, expert) pair, the combine weight
  /// when kept (never renormalised).
  Tensor weights;
  /// (G, E): token choice: assignments requested per expert, including
  /// dropped ones; expert choice: C (every expert is exactly full).
  IntTensor expertCounts;
  /// (G, E, C): token in each slot, -1 for an empty slot.
  IntTensor slotTokens;
};

/// Token choice (NoisyTopExpertsPerItemRouter at inference): top-k gates per
/// token, then assignSlots. `gates` (G, S, E).
Routing tokenChoiceRouting(const Tensor &gates, int64_t numSelectedExperts,
                           int64_t capacity, bool batchPriority,
                           int64_t numValidTokens = -1);

/// Expert choice (NoisyTopItemsPerExpertRouter): expert e takes the
/// `capacity` tokens with the largest gates[:, e], ties to the lower token
/// index; slot c holds the c-th best. Error if capacity > S or < 1.
/// Padding tokens (past `numValidTokens`, see assignSlots) are never
/// picked: an expert of a group with fewer real tokens than C takes them all
/// (expertCounts: the tokens taken).
Result<Routing> expertChoiceRouting(const Tensor &gates, int64_t capacity,
                                    int64_t numValidTokens = -1);

/// The einsum dispatcher's tensors, (G, S, E, C): combine_w[g,s,e,c] = the
/// gate when token s sits in slot c of expert e, else 0; dispatchMask has
/// 1 there instead of the gate.
Tensor combineWeights(const Routing &routing);
Tensor dispatchMask(const Routing &routing);

//===----------------------------------------------------------------------===//
// Dense layers (reference sections 2 and 3)
//===----------------------------------------------------------------------===//

struct DenseWeights {
  Tensor kernel; // (In, Out)
  Tensor bias;   // (Out); a default-constructed Tensor means "no bias"
};
struct LayerNormWeights {
  Tensor scale; // (D)
  Tensor bias;  // (D)
};
struct MlpWeights {
  DenseWeights dense0; // D -> M
  DenseWeights dense1; // M -> D
};
struct AttentionWeights {
  Tensor queryKernel, keyKernel, valueKernel; // (D, H, Dh)
  Tensor queryBias, keyBias, valueBias;       // (H, Dh)
  Tensor outKernel;                           // (H, Dh, D)
  Tensor outBias;                             // (D)
};

/// y = x @ kernel (+ bias). x (..., In), kernel (In, Out) -> (..., Out).
Tensor dense(const Tensor &x, const Tensor &kernel);
Tensor dense(const Tensor &x, const Tensor &kernel, const Tensor &bias);
Tensor dense(const Tensor &x, const DenseWeights &weights);
/// The same with the given GEMM math (GemmMath::Int8: denseInt8).
Tensor dense(const Tensor &x, const DenseWeights &weights, GemmMath math);

/// Flax LayerNorm over the last axis: mu = mean(x), var = max(0, mean(x^2) -
/// mu^2), y = (x - mu) * (rsqrt(var + eps) * scale) + bias. The statistics
/// are accumulated in double (near the formula's exact value); float32
/// implementations of this form lose precision when |mean| >> std.
Tensor layerNorm(const Tensor &x, const Tensor &scale, const Tensor &bias,
                 double epsilon = 1e-6);
Tensor layerNorm(const Tensor &x, const LayerNormWeights &weights,
                 double epsilon = 1e-6);

/// Dense_0 -> tanh GELU -> Dense_1 (dropout is the identity at inference).
/// With GemmMath::Int8 both GEMMs are int8: Dense_1 quantizes the GELU
/// output per row.
Tensor mlpBlock(const Tensor &x, const MlpWeights &weights,
                GemmMath math = GemmMath::F32);

/// Patch embedding: images (B, H, W, C) NHWC, kernel (p, p, C, D) HWIO, bias
/// (D); VALID conv with stride p (pixels past floor(H/p)*p are ignored).
/// Result (B, h*w, D), row-major over the (h, w) grid.
Tensor patchEmbed(const Tensor &images, const Tensor &kernel,
                  const Tensor &bias);

/// Prepends cls (1, 1, D) to every image: (B, N, D) -> (B, N+1, D).
Tensor prependClassToken(const Tensor &x, const Tensor &cls);
/// x (B, T, D) + posEmbedding (1, T, D), broadcast over the batch.
Tensor addPositionEmbedding(const Tensor &x, const Tensor &posEmbedding);

/// Flax MultiHeadDotProductAttention as self-attention on x (B, T, D): q, k,
/// v projections with bias; q scaled by 1/sqrt(Dh) before q.k; softmax over
/// the keys; no mask; output projection over (H, Dh) with bias. With
/// GemmMath::Int8 the q, k, v projections (kernels as (D, H*Dh), one channel
/// per (head, dim)) and the output projection are int8 GEMMs; q.k, softmax
/// and the weighted sum of values stay f32.
Tensor selfAttention(const Tensor &x, const AttentionWeights &weights,
                     GemmMath math = GemmMath::F32);
/// The same with queries from `inputsQ` (B, Tq, D) and keys and values
/// from `inputsKv` (B, Tkv, D): result (B, Tq, D).
Tensor multiHeadAttention(const Tensor &inputsQ, const Tensor &inputsKv,
                          const AttentionWeights &weights,
                          GemmMath math = GemmMath::F32);

/// vmoe's sincos2d position embedding (EncoderMoe.add_position_emb) of a
/// height x width patch grid with `hidden` channels: (height * width,
/// hidden), row n = (y, x) of the grid (row-major), columns
/// [sin(x w), cos(x w), sin(y w), cos(y w)] with w_i = 1 / temperature^(i /
/// (hidden/4 - 1)), i < hidden/4. Computed in double, rounded once (vmoe
/// computes it in float32). hidden must be a multiple of 4, at least 8.
Tensor sincos2dTable(int64_t height, int64_t width, int64_t hidden,
                     double temperature = 10000.0);
/// x (B, T, D) plus the table on its last height * width tokens; with T =
/// height * width + 1 the first (class) token gets none.
Tensor addSincos2dPositionEmbedding(const Tensor &x, int64_t height,
                                    int64_t width, double temperature);

/// vmoe's MapHead parameters ('MapHead/...').
struct MapHeadWeights {
  Tensor probe;               // (1, 1, D)
  AttentionWeights attention; // 'MultiHeadDotProductAttention'
  LayerNormWeights layerNorm; // 'LayerNorm'
  MlpWeights mlp;             // 'Mlp'
};
/// vmoe's MapHead (classifier='map') on x (B, T, D): a = attention(q =
/// probe, kv = x); (a + Mlp(LayerNorm(a)))[:, 0] -> (B, D).
Tensor mapHead(const Tensor &x, const MapHeadWeights &weights);

//===----------------------------------------------------------------------===//
// Sparse MoE layer (reference section 4)
//===----------------------------------------------------------------------===//

/// Expert MLP weights stacked on a leading E axis.
struct ExpertWeights {
  Tensor kernel0; // (E, D, M)
  Tensor bias0;   // (E, M)
  Tensor kernel1; // (E, M, D)
  Tensor bias1;   // (E, D)
};
struct MoeWeights {
  Tensor routerKernel; // (D, E), 'Moe/Router/dense/kernel'
  ExpertWeights experts;
};

/// Gathers tokens x (G, S, D) into expert buffers (E, G, C, D); empty slots
/// hold zeros. With `roundInputsToBf16`, the gathered values are bf16-rounded
/// (the Bfloat16Dispatcher's effect on expert inputs).
Tensor dispatch(const Tensor &x, const Routing &routing,
                bool roundInputsToBf16);

/// Upstream's dispatch() layout (E, G*C, D) of buffers (E, G, C, D): when
/// G % E == 0, expert e's rows are ordered (g_local, blk, c) with g =
/// blk*(G/E) + g_local; otherwise (g, c). Only needed to compare against
/// upstream intermediate tensors.
Tensor toUpstreamDispatchLayout(const Tensor &buffers);

/// Applies expert e's MLP (Dense_0 -> GELU -> Dense_1) to buffers[e] for
/// every e. buffers (E, ..., D) -> (E, ..., D). Empty slots are computed too
/// (MLP(0)); combine gives them weight 0. With `roundHiddenToBf16`, the
/// GELU output is bf16-rounded before Dense_1. With GemmMath::Int8 both
/// expert GEMMs are int8 (mlpBlock's int8 form); per-row quantization makes a
/// token's quantized row the same in every expert it is dispatched to.
Tensor expertMlp(const Tensor &buffers, const ExpertWeights &weights,
                 bool roundHiddenToBf16 = false, GemmMath math = GemmMath::F32);

/// out[g,s,:] = sum over kept assignments j of weight[g,s,j] *
/// Y[expert, g, slot, :]. Y (E, G, C, D) -> (G, S, D). With
/// `roundOutputsToBf16`, Y is bf16-rounded before the weighted sum; the sum
/// itself stays float32. Dropped assignments contribute 0.
Tensor combine(const Tensor &expertOutputs, const Routing &routing,
               bool roundOutputsToBf16);

enum class RoutingKind { TokenChoice, ExpertChoice };

struct MoeConfig {
  /// Tokens routed together (S); must divide the number of tokens.
  int64_t groupSize = 0;
  RoutingKind routing = RoutingKind::TokenChoice;
  /// K, token choice only (upstream default 1; the paper uses 2).
  int64_t numSelectedExperts = 1;
  /// Exactly one of these two must be set (as upstream).
  std::optional<int64_t> capacity;
  std::optional<double> capacityFactor;
  CapacityRounding capacityRounding = CapacityRounding::Ceil;
  int64_t capacityMultipleOf = 4;
  /// Batch Prioritized Routing (token choice only).
  bool batchPriority = false;
  /// The last `paddingTokens` tokens (zero images that pad a batch to whole
  /// groups) take no slot: they are not routed and their MoE output is 0;
  /// the capacity stays that of the whole group (docs/routing.md).
  int64_t paddingTokens = 0;
  /// Bfloat16Dispatcher: bf16-round expert inputs and outputs. On in every
  /// paper config.
  bool bf16Dispatch = true;
  /// bf16 expert GEMMs (vmoe-compile --expert-math=bf16): the expert inputs
  /// and the GELU output are bf16-rounded as well (the caller rounds the
  /// expert weights).
  bool bf16ExpertMath = false;
  /// int8 expert GEMMs (vmoe-compile --expert-math=int8): the dispatched
  /// rows (bf16-rounded first under bf16Dispatch) and the GELU output are
  /// quantized per row, the expert kernels per output channel (the int8
  /// section above). Routing stays f32. Exclusive with bf16ExpertMath.
  bool int8ExpertMath = false;
};

/// The capacity C that `config` gives for E experts: the explicit capacity,
/// or computeCapacity(S*K, E, cf) for token choice and computeCapacity(S, E,
/// cf) for expert choice.
Result<int64_t> resolveCapacity(const MoeConfig &config, int64_t numExperts);

/// What routing did in one MoE layer.
struct MoeStats {
  /// (G, E): assignments requested per expert (token choice, including
  /// dropped ones), or C (expert choice).
  IntTensor expertCounts;
  /// (G, E): filled slots per expert, min(count, C).
  IntTensor expertKept;
  /// Over the whole layer. Expert choice: kept = G*E*C, dropped = 0 (an
  /// unpicked (token, expert) pair is not a request, so it is not a drop).
  /// Padding tokens request nothing.
  int64_t assignmentsKept = 0;
  int64_t assignmentsDropped = 0;
  /// Kept assignments per token, shaped like the input without its last
  /// axis ((B, T) or (N)).
  IntTensor tokenKeptAssignments;
  /// Input (B, T, D) only: per image, the share of its tokens with at least
  /// one kept assignment. Empty otherwise.
  std::vector<double> imageTokenShare;
};

struct MoeOutput {
  Tensor output; // shaped like the input
  Tensor gates;  // (G, S, E)
  Routing routing;
  MoeStats stats;
};

/// The MoE-MLP layer (MlpMoeBlock at inference): x (..., D) is flattened to
/// tokens, cut into groups of groupSize consecutive tokens (error if that
/// does not divide), routed per group, dispatched, run through the experts
/// and combined. Errors: bad group size, capacity settings (none or both,
/// capacity < 1), K outside [1, E], capacity > S for expert choice.
Result<MoeOutput> sparseMoe(const Tensor &x, const MoeWeights &weights,
                            const MoeConfig &config);

//===----------------------------------------------------------------------===//
// Encoder, head and whole model (reference section 1)
//===----------------------------------------------------------------------===//

struct EncoderBlockWeights {
  LayerNormWeights layerNorm0;
  AttentionWeights attention;
  LayerNormWeights layerNorm1;
  /// Exactly one of these is set: a dense block or a MoE block.
  std::optional<MlpWeights> mlp;
  std::optional<MoeWeights> moe;
};

struct EncoderBlockOutput {
  Tensor output;
  std::optional<MoeOutput> moe; // set for MoE blocks
};

/// Pre-LN block: x += attn(LN0(x)); x += mlp_or_moe(LN1(x)). `moeConfig` is
/// used only by MoE blocks; `denseMath` applies to the attention
/// projections and the dense MLP (not to the MoE layer: see moeConfig).
Result<EncoderBlockOutput> encoderBlock(const Tensor &x,
                                        const EncoderBlockWeights &weights,
                                        const MoeConfig &moeConfig,
                                        GemmMath denseMath = GemmMath::F32);

/// 'token': prepend cls, pool token 0. 'first' (upstream classifier='0'): no
/// cls, pool token 0. 'gap': no cls, mean over tokens. 'map': no cls,
/// MapHead.
enum class Classifier { Token, First, Gap, Map };

/// x (B, T, D) -> (B, D) per the classifier (not Map: see mapHead).
Tensor pool(const Tensor &x, Classifier classifier);

/// pooled (B, D) -> logits: optional tanh(Dense 'pre_logits'), then Dense
/// 'head'.
Tensor classifierHead(const Tensor &pooled,
                      const std::optional<DenseWeights> &preLogits,
                      const DenseWeights &head);

struct ModelWeights {
  Tensor embeddingKernel; // (p, p, 3, D)
  Tensor embeddingBias;   // (D)
  Tensor cls;             // (1, 1, D); only for Classifier::Token
  Tensor posEmbedding;    // (1, T, D); empty tensor = no learned one
  std::vector<EncoderBlockWeights> blocks;
  LayerNormWeights encoderNorm;
  std::optional<DenseWeights> preLogits;
  DenseWeights head;
  std::optional<MapHeadWeights> mapHead; // Classifier::Map only
};

/// The patch size, D, heads, E and M come from the weight shapes.
struct ModelConfig {
  Classifier classifier = Classifier::Token;
  /// sincos2d position embeddings with this temperature (the grid is the
  /// patch grid); unset: the learned table of ModelWeights, if any.
  std::optional<double> sincos2dTemperature;
  /// Used by every MoE block.
  MoeConfig moe;
  /// int8 dense GEMMs (vmoe-compile --dense-math=int8): the encoder blocks'
  /// attention q/k/v/out projections and dense MLPs. The patch embedding,
  /// the router, the MAP head, pre-logits and the head stay f32.
  bool int8DenseMath = false;
};

struct ModelOutput {
  Tensor logits;  // (B, classes)
  Tensor encoded; // (B, T, D), after encoder_norm
  /// One entry per MoE block, in block order, with its block index.
  std::vector<std::pair<int64_t, MoeOutput>> moeLayers;
};

/// VisionTransformerMoe forward at inference on images (B, H, W, 3) in
/// [-1, 1].
Result<ModelOutput> visionTransformerMoe(const Tensor &images,
                                         const ModelWeights &weights,
                                         const ModelConfig &config);

} // namespace vmoe::reference

#endif // VMOE_TESTS_SUPPORT_REFERENCE_REFERENCE_H
