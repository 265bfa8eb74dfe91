//===- RoutingTest.cpp - routing options end to end -----------------------===//
//
// One MoE layer written as MLIR (random weights as constants), compiled
// through the whole compiler, run with the runtime's C API and compared with
// the reference evaluator: outputs within a stated tolerance, routing
// statistics exactly. Covers what the layer can be asked for beyond the
// capacity factor and BPR: explicit capacities, vmoe.capacity's rule
// (multiple_of, round), k per call, batches that end in a partial routing
// group (padding never takes a slot) and expert-choice routing.
//
// VMOE_E2E_TARGET=cuda-emulation runs the same checks on the CUDA kernels'
// bodies (ctest's vmoe_e2e_cuda_emulation), VMOE_E2E_DEVICE=cuda on a GPU.
//
//===----------------------------------------------------------------------===//

#include "E2eSupport.h"
#include "reference/Reference.h"
#include "vmoe/Pipelines/Compile.h"
#include "vmoe/runtime.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <sstream>
#include <string>

namespace {

namespace ref = vmoe::reference;

/// The layer: x (B, T, D) -> MoE(x), E experts of MLP size M.
struct Layer {
  int64_t b = 4, t = 8, d = 16, e = 4, m = 32;
  /// The sparse_moe attributes (without the braces), or, when `decomposed`
  /// is set, the attributes of its vmoe.capacity op.
  std::string attrs;
  /// Write the decomposed form with `capacityAttrs` on vmoe.capacity
  /// (top-k, k = 2, groups of `group` tokens).
  bool decomposed = false;
  int64_t group = 16, k = 2, maxCapacity = 0;
};

std::string tensorType(const std::vector<int64_t> &shape) {
  std::string s = "tensor<";
  for (int64_t v : shape)
    s += std::to_string(v) + "x";
  return s + "f32>";
}

/// A dense<...> literal of `t`, nested by its shape.
std::string denseLiteral(const ref::Tensor &t) {
  std::ostringstream os;
  size_t next = 0;
  std::function<void(size_t)> emit = [&](size_t dim) {
    os << '[';
    for (int64_t i = 0; i < t.shape[dim]; ++i) {
      if (i)
        os << ',';
      if (dim + 1 == t.shape.size()) {
        char buf[32];
        std::snprintf(buf, sizeof(buf), "%.9e", double(t.data[next++]));
        os << buf;
      } else {
        emit(dim + 1);
      }
    }
    os << ']';
  };
  emit(0);
  return "dense<" + os.str() + "> : " + tensorType(t.shape);
}

ref::Tensor randomTensor(std::vector<int64_t> shape, std::mt19937_64 &rng,
                         float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  ref::Tensor t(std::move(shape));
  for (float &v : t.data)
    v = dist(rng);
  return t;
}

ref::MoeWeights randomLayerWeights(const Layer &l, uint64_t seed) {
  std::mt19937_64 rng(seed);
  ref::MoeWeights w;
  w.routerKernel = randomTensor({l.d, l.e}, rng, 1.0f);
  w.experts.kernel0 = randomTensor({l.e, l.d, l.m}, rng, 0.25f);
  w.experts.bias0 = randomTensor({l.e, l.m}, rng, 0.1f);
  w.experts.kernel1 = randomTensor({l.e, l.m, l.d}, rng, 0.18f);
  w.experts.bias1 = randomTensor({l.e, l.d}, rng, 0.1f);
  return w;
}

/// The MLIR of the layer with `w` as constants.
std::string layerMlir(const Layer &l, const ref::MoeWeights &w) {
  std::string x = tensorType({l.b, l.t, l.d});
  std::ostringstream os;
  os << "func.func @layer(%x: " << x << ") -> " << x << " {\n"
     << "  %r = arith.constant " << denseLiteral(w.routerKernel) << "\n"
     << "  %w1 = arith.constant " << denseLiteral(w.experts.kernel0) << "\n"
     << "  %b1 = arith.constant " << denseLiteral(w.experts.bias0) << "\n"
     << "  %w2 = arith.constant " << denseLiteral(w.experts.kernel1) << "\n"
     << "  %b2 = arith.constant " << denseLiteral(w.experts.bias1) << "\n";
  std::string types = tensorType(w.routerKernel.shape) + ", " +
                      tensorType(w.experts.kernel0.shape) + ", " +
                      tensorType(w.experts.bias0.shape) + ", " +
                      tensorType(w.experts.kernel1.shape) + ", " +
                      tensorType(w.experts.bias1.shape);
  if (!l.decomposed) {
    os << "  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {" << l.attrs
       << "} : (" << x << ", " << types << ") -> " << x << "\n"
       << "  return %y : " << x << "\n}\n";
    return os.str();
  }
  int64_t g = l.b * l.t / l.group, s = l.group, k = l.k, e = l.e;
  std::string grouped = tensorType({g, s, l.d});
  std::string gates = tensorType({g, s, e});
  std::string kf = tensorType({g, s, k});
  std::string ki = "tensor<" + std::to_string(g) + "x" + std::to_string(s) +
                   "x" + std::to_string(k) + "xi32>";
  std::string counts =
      "tensor<" + std::to_string(g) + "x" + std::to_string(e) + "xi32>";
  std::string buffers = tensorType({e, g, l.maxCapacity, l.d});
  os << "  %flat = tensor.collapse_shape %x [[0, 1], [2]] : " << x << " into "
     << tensorType({l.b * l.t, l.d}) << "\n"
     << "  %xg = tensor.expand_shape %flat [[0, 1], [2]] output_shape [" << g
     << ", " << s << ", " << l.d << "] : " << tensorType({l.b * l.t, l.d})
     << " into " << grouped << "\n"
     << "  %gt = vmoe.router %xg, %r : " << grouped << ", "
     << tensorType(w.routerKernel.shape) << " -> " << gates << "\n"
     << "  %tw, %te = vmoe.top_k %gt {k = " << k << "} : " << gates << " -> "
     << kf << ", " << ki << "\n"
     << "  %cf = arith.constant 1.0 : f64\n"
     << "  %c = vmoe.capacity %cf {" << l.attrs << "} : f64\n"
     << "  %bpr = arith.constant false\n"
     << "  %sl, %cn = vmoe.assign_slots %te, %tw, %c, %bpr {num_experts = " << e
     << ", max_capacity = " << l.maxCapacity << "} : " << ki << ", " << kf
     << " -> " << ki << ", " << counts << "\n"
     << "  %buf = vmoe.dispatch %xg, %te, %sl : " << grouped << ", " << ki
     << ", " << ki << " -> " << buffers << "\n"
     << "  %ye = vmoe.expert_mlp %buf, %w1, %b1, %w2, %b2 : " << buffers << ", "
     << types.substr(types.find(", ") + 2) << " -> " << buffers << "\n"
     << "  %yg = vmoe.combine %ye, %te, %sl, %tw : " << buffers << ", " << ki
     << ", " << ki << ", " << kf << " -> " << grouped << "\n"
     << "  %yf = tensor.collapse_shape %yg [[0, 1], [2]] : " << grouped
     << " into " << tensorType({l.b * l.t, l.d}) << "\n"
     << "  %y = tensor.expand_shape %yf [[0, 1], [2]] output_shape [" << l.b
     << ", " << l.t << ", " << l.d << "] : " << tensorType({l.b * l.t, l.d})
     << " into " << x << "\n"
     << "  return %y : " << x << "\n}\n";
  return os.str();
}

struct Compiled {
  vmoe_module_t *module = nullptr;
  vmoe_session_t *session = nullptr;
  ~Compiled() {
    vmoe_session_destroy(session);
    vmoe_module_release(module);
  }
};

/// Compiles `mlir` for this machine (or the CUDA emulation, see the top),
/// loads it and opens a session with `options` (null: defaults).
void compileLayer(const std::string &mlir, Compiled &out,
                  const vmoe_session_options_t *options = nullptr,
                  std::string *compileError = nullptr) {
  mlir::DialectRegistry registry;
  mlir::vmoe::registerCompilerDialects(registry);
  mlir::MLIRContext context(registry);
  auto module = mlir::parseSourceString<mlir::ModuleOp>(mlir, &context);
  ASSERT_TRUE(module) << "the test's MLIR does not parse";
  mlir::vmoe::CompileOptions copts;
  copts.cpu = "host";
  bool onGpu = vmoe::e2e::setE2eTarget(copts);
  std::vector<uint8_t> bytes;
  std::string error;
  bool ok = mlir::succeeded(
      mlir::vmoe::compileToModule(*module, copts, bytes, &error));
  if (compileError) {
    ASSERT_FALSE(ok) << "compiled, expected an error";
    *compileError = error;
    return;
  }
  ASSERT_TRUE(ok) << error;
  vmoe::e2e::openSession(bytes, onGpu, &out.module, &out.session, options);
}

ref::Tensor randomInput(const Layer &l, int64_t batch, uint64_t seed) {
  std::mt19937_64 rng(seed);
  return randomTensor({batch, l.t, l.d}, rng, 1.0f);
}

/// Runs `x` (batch = x.dim(0)) with `ropts` and returns the status; the
/// output goes to `y`.
vmoe_status_t runLayer(Compiled &c, const ref::Tensor &x,
                       const vmoe_run_options_t *ropts, std::vector<float> &y,
                       vmoe_message_t *msg) {
  y.assign(x.data.size(), 0.0f);
  vmoe_tensor_t in = {VMOE_DTYPE_F32, 3, x.shape.data(),
                      const_cast<float *>(x.data.data()), x.data.size() * 4};
  vmoe_tensor_t out = {VMOE_DTYPE_F32, 3, x.shape.data(), y.data(),
                       y.size() * 4};
  return vmoe_session_run(c.session, &in, 1, &out, 1, ropts, msg);
}

/// Runs the compiled layer on `x` and compares with the reference layer
/// under `config` (the call's settings): outputs within 2e-4 (f32 kernels
/// against a double-accumulating reference on unit-scale values), routing
/// statistics exactly. `padTo` > x.dim(0): the reference runs the batch
/// padded with zero images that take no slot.
void expectLayerMatch(Compiled &c, const ref::MoeWeights &w,
                      const ref::Tensor &x, ref::MoeConfig config,
                      const vmoe_run_options_t *ropts, int64_t padTo = 0) {
  int64_t batch = x.dim(0), t = x.dim(1), d = x.dim(2);
  ref::Tensor padded = x;
  if (padTo > batch) {
    padded = ref::Tensor({padTo, t, d});
    std::copy(x.data.begin(), x.data.end(), padded.data.begin());
    config.paddingTokens = (padTo - batch) * t;
  }
  auto want = ref::sparseMoe(padded, w, config);
  ASSERT_TRUE(want.ok()) << want.error();
  std::vector<float> y;
  vmoe_message_t msg;
  ASSERT_EQ(runLayer(c, x, ropts, y, &msg), VMOE_STATUS_OK) << msg.text;
  double maxDiff = 0;
  for (size_t i = 0; i < y.size(); ++i)
    maxDiff = std::max(maxDiff, std::abs(double(y[i]) - want->output.data[i]));
  EXPECT_LT(maxDiff, 2e-4);

  const ref::MoeStats &ws = want->stats;
  vmoe_routing_stats_t got;
  ASSERT_EQ(vmoe_session_routing_stats(c.session, 0, &got, &msg),
            VMOE_STATUS_OK)
      << msg.text;
  EXPECT_EQ(got.capacity, uint64_t(want->routing.capacity));
  EXPECT_EQ(got.image_count, uint32_t(batch));
  EXPECT_EQ(got.assignments_kept, uint64_t(ws.assignmentsKept));
  EXPECT_EQ(got.assignments_dropped, uint64_t(ws.assignmentsDropped));
  int64_t e = w.routerKernel.dim(1);
  std::vector<uint64_t> assigned(e), kept(e);
  ASSERT_EQ(vmoe_session_expert_load(c.session, 0, assigned.data(), kept.data(),
                                     e, &msg),
            VMOE_STATUS_OK)
      << msg.text;
  for (int64_t ex = 0; ex < e; ++ex) {
    uint64_t wantAssigned = 0, wantKept = 0;
    for (int64_t g = 0; g < ws.expertCounts.dim(0); ++g) {
      wantAssigned += ws.expertCounts.at(g, ex);
      wantKept += ws.expertKept.at(g, ex);
    }
    EXPECT_EQ(assigned[ex], wantAssigned) << "expert " << ex;
    EXPECT_EQ(kept[ex], wantKept) << "expert " << ex;
  }
  std::vector<double> shares(batch);
  ASSERT_EQ(
      vmoe_session_image_coverage(c.session, 0, shares.data(), batch, &msg),
      VMOE_STATUS_OK)
      << msg.text;
  for (int64_t i = 0; i < batch; ++i)
    EXPECT_DOUBLE_EQ(shares[i], ws.imageTokenShare[i]) << "image " << i;
}

ref::MoeConfig topKConfig(int64_t group, int64_t k, double cf) {
  ref::MoeConfig config;
  config.groupSize = group;
  config.numSelectedExperts = k;
  config.capacityFactor = cf;
  config.bf16Dispatch = false;
  return config;
}

} // namespace

namespace {

// sparse_moe {capacity = N}: the capacity is fixed, the module runs (it was
// refused at load before) and every call uses N; a capacity factor is
// refused with a message that says why.
TEST(RoutingCapacity, ExplicitCapacityIsUsedAsIs) {
  Layer l;
  l.attrs = "num_experts = 4, k = 2, group_size = 16, capacity = 3";
  ref::MoeWeights w = randomLayerWeights(l, 1);
  Compiled c;
  compileLayer(layerMlir(l, w), c);
  if (HasFatalFailure())
    return;
  vmoe_moe_layer_info_t info;
  vmoe_message_t msg;
  ASSERT_EQ(vmoe_module_moe_layer_info(c.module, 0, &info, &msg),
            VMOE_STATUS_OK);
  EXPECT_EQ(info.fixed_capacity, 1);
  EXPECT_EQ(info.max_capacity, 3u);
  ref::MoeConfig config = topKConfig(16, 2, 0);
  config.capacityFactor.reset();
  config.capacity = 3;
  ref::Tensor x = randomInput(l, 4, 2);
  for (int bpr : {0, 1}) {
    config.batchPriority = bpr;
    vmoe_run_options_t ropts = {0, bpr, 0};
    expectLayerMatch(c, w, x, config, &ropts);
  }
  // k = 1 keeps the fixed capacity (vmoe uses an explicit one as it is).
  config.numSelectedExperts = 1;
  config.batchPriority = false;
  vmoe_run_options_t k1 = {0, 0, 1};
  expectLayerMatch(c, w, x, config, &k1);

  std::vector<float> y;
  vmoe_run_options_t cf = {0.5, -1, 0};
  ASSERT_EQ(runLayer(c, x, &cf, y, &msg), VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_STREQ(msg.text, "capacity factor 0.5: no MoE layer of this module "
                         "takes one (each was compiled with a fixed "
                         "capacity)");
}

// vmoe.capacity {multiple_of = 1, round = true}: the module evaluates that
// rule per call. At cf 0.3: round(16 * 2 * 0.3 / 4) = round(2.4) = 2 where
// vmoe's default rule gives roundup4(ceil(2.4)) = 4, so assignments that
// the default would keep are dropped; at cf 0.3125, round(2.5) = 2 (half
// to even) where ceil gives 3.
TEST(RoutingCapacity, CapacityRuleOfTheIrIsHonoured) {
  Layer l;
  l.decomposed = true;
  l.maxCapacity = 16;
  l.attrs = "num_tokens = 32, num_experts = 4, multiple_of = 1, round = "
            "true, max_capacity_factor = 2.0 : f64";
  ref::MoeWeights w = randomLayerWeights(l, 3);
  Compiled c;
  compileLayer(layerMlir(l, w), c);
  if (HasFatalFailure())
    return;
  vmoe_moe_layer_info_t info;
  vmoe_message_t msg;
  ASSERT_EQ(vmoe_module_moe_layer_info(c.module, 0, &info, &msg),
            VMOE_STATUS_OK);
  EXPECT_EQ(info.capacity_multiple_of, 1u);
  EXPECT_EQ(info.capacity_round, 1);
  ref::Tensor x = randomInput(l, 4, 4);
  for (double cf : {0.3, 0.3125, 0.4375, 0.9, 2.0})
    for (int bpr : {0, 1}) {
      SCOPED_TRACE("cf " + std::to_string(cf) + " bpr " + std::to_string(bpr));
      ref::MoeConfig config = topKConfig(16, 2, cf);
      config.capacityRounding = ref::CapacityRounding::Round;
      config.capacityMultipleOf = 1;
      config.batchPriority = bpr;
      vmoe_run_options_t ropts = {cf, bpr, 0};
      expectLayerMatch(c, w, x, config, &ropts);
    }
  vmoe_routing_stats_t stats;
  vmoe_run_options_t ropts = {0.3, 0, 0};
  std::vector<float> y;
  ASSERT_EQ(runLayer(c, x, &ropts, y, &msg), VMOE_STATUS_OK) << msg.text;
  ASSERT_EQ(vmoe_session_routing_stats(c.session, 0, &stats, &msg),
            VMOE_STATUS_OK);
  EXPECT_EQ(stats.capacity, 2u);
  EXPECT_GT(stats.assignments_dropped, 0u);
}

// k per call: a module compiled for k = 2 runs k = 1 (and 2) without
// recompiling; the capacity follows k as vmoe recomputes it from S * k.
TEST(RoutingK, KPerCallMatchesTheReference) {
  Layer l;
  l.attrs = "num_experts = 4, k = 2, group_size = 16, capacity_factor = "
            "1.0 : f64, max_capacity_factor = 2.0 : f64";
  ref::MoeWeights w = randomLayerWeights(l, 5);
  Compiled c;
  compileLayer(layerMlir(l, w), c);
  if (HasFatalFailure())
    return;
  ref::Tensor x = randomInput(l, 4, 6);
  for (uint32_t k : {1u, 2u})
    for (double cf : {2.0, 1.0, 0.5})
      for (int bpr : {0, 1}) {
        SCOPED_TRACE("k " + std::to_string(k) + " cf " + std::to_string(cf) +
                     " bpr " + std::to_string(bpr));
        ref::MoeConfig config = topKConfig(16, k, cf);
        config.batchPriority = bpr;
        vmoe_run_options_t ropts = {cf, bpr, k};
        expectLayerMatch(c, w, x, config, &ropts);
        vmoe_routing_stats_t stats;
        vmoe_message_t msg;
        ASSERT_EQ(vmoe_session_routing_stats(c.session, 0, &stats, &msg),
                  VMOE_STATUS_OK);
        EXPECT_EQ(stats.k, k);
      }
  // Beyond the compiled k: refused.
  std::vector<float> y;
  vmoe_message_t msg;
  vmoe_run_options_t three = {0, -1, 3};
  ASSERT_EQ(runLayer(c, x, &three, y, &msg), VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_STREQ(msg.text, "k 3 is out of range for MoE layer 0 ('moe0'): it "
                         "must be in [1, 2], the compiled k");
}

// The session's k is every call's default; a call's k overrides it.
TEST(RoutingK, SessionKIsTheDefault) {
  Layer l;
  l.attrs = "num_experts = 4, k = 2, group_size = 16, capacity_factor = "
            "1.0 : f64";
  ref::MoeWeights w = randomLayerWeights(l, 7);
  vmoe_session_options_t sopts;
  vmoe_session_options_init(&sopts);
  sopts.num_selected_experts = 1;
  Compiled c;
  compileLayer(layerMlir(l, w), c, &sopts);
  if (HasFatalFailure())
    return;
  ref::Tensor x = randomInput(l, 4, 8);
  expectLayerMatch(c, w, x, topKConfig(16, 1, 1.0), nullptr);
  vmoe_run_options_t two = {0, -1, 2};
  expectLayerMatch(c, w, x, topKConfig(16, 2, 1.0), &two);

  // A session k past the compiled one is refused when the session is made.
  sopts.num_selected_experts = 3;
  vmoe_session_t *session = nullptr;
  vmoe_message_t msg;
  EXPECT_EQ(vmoe_session_create(c.module, &sopts, &session, &msg),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(session, nullptr);
}

} // namespace

namespace {

// A batch that ends inside a routing group (here groups of 2 and of 4
// images, a module compiled for 4): the module runs it as it is (batch
// step 1), and its real tokens route as in the group padded with zero
// images that take no slot: the capacity stays the whole group's, the
// padding neither counts nor takes a slot (docs/routing.md). Full batches
// run first, so the partial ones find stale data past their tokens.
TEST(RoutingPadding, PartialGroupsRouteOnlyRealTokens) {
  for (int64_t group : {16, 32}) {
    SCOPED_TRACE("group " + std::to_string(group));
    Layer l;
    l.attrs = "num_experts = 4, k = 2, group_size = " + std::to_string(group) +
              ", capacity_factor = 0.5 : f64, max_capacity_factor = 2.0 : f64";
    ref::MoeWeights w = randomLayerWeights(l, 11);
    Compiled c;
    compileLayer(layerMlir(l, w), c);
    if (HasFatalFailure())
      return;
    vmoe_module_info_t info;
    vmoe_module_info(c.module, &info);
    EXPECT_EQ(info.batch_multiple, 1);
    ref::Tensor all = randomInput(l, 4, 12);
    int64_t imagesPerGroup = group / l.t;
    for (int64_t batch : {4, 1, 3, 2, 4, 1}) {
      ref::Tensor x({batch, l.t, l.d});
      std::copy_n(all.data.begin(), x.data.size(), x.data.begin());
      int64_t padTo =
          (batch + imagesPerGroup - 1) / imagesPerGroup * imagesPerGroup;
      for (double cf : {0.5, 2.0})
        for (int bpr : {0, 1}) {
          SCOPED_TRACE("batch " + std::to_string(batch) + " cf " +
                       std::to_string(cf) + " bpr " + std::to_string(bpr));
          ref::MoeConfig config = topKConfig(group, 2, cf);
          config.batchPriority = bpr;
          vmoe_run_options_t ropts = {cf, bpr, 0};
          expectLayerMatch(c, w, x, config, &ropts, padTo);
        }
    }
  }
}

} // namespace

namespace {

ref::MoeConfig expertChoiceConfig(int64_t group, double cf) {
  ref::MoeConfig config;
  config.groupSize = group;
  config.routing = ref::RoutingKind::ExpertChoice;
  config.capacityFactor = cf;
  config.bf16Dispatch = false;
  return config;
}

// Expert choice (vmoe's NoisyTopItemsPerExpertRouter) compiled: each expert
// takes the C tokens of a group with its largest gates, C from S (not S * k)
// and the per-call capacity factor; the module records the routing.
TEST(RoutingExpertChoice, MatchesTheReference) {
  Layer l;
  l.attrs = "num_experts = 4, group_size = 16, capacity_factor = 1.0 : f64, "
            "max_capacity_factor = 4.0 : f64, routing = "
            "#vmoe.routing<expert_choice>";
  ref::MoeWeights w = randomLayerWeights(l, 13);
  Compiled c;
  compileLayer(layerMlir(l, w), c);
  if (HasFatalFailure())
    return;
  vmoe_moe_layer_info_t info;
  vmoe_message_t msg;
  ASSERT_EQ(vmoe_module_moe_layer_info(c.module, 0, &info, &msg),
            VMOE_STATUS_OK);
  EXPECT_EQ(info.expert_choice, 1);
  EXPECT_EQ(info.k, 1u);
  EXPECT_EQ(info.max_capacity, 16u);
  ref::Tensor x = randomInput(l, 4, 14);
  // C = roundup4(ceil(16 * cf / 4)): 4, 4, 8, 12, 16.
  for (double cf : {1.0, 0.5, 2.0, 3.0, 4.0}) {
    SCOPED_TRACE("cf " + std::to_string(cf));
    vmoe_run_options_t ropts = {cf, -1, 0};
    expectLayerMatch(c, w, x, expertChoiceConfig(16, cf), &ropts);
  }
  // Partial groups: padding is never picked.
  for (int64_t batch : {1, 3}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    ref::Tensor part({batch, l.t, l.d});
    std::copy_n(x.data.begin(), part.data.size(), part.data.begin());
    for (double cf : {1.0, 4.0}) {
      vmoe_run_options_t ropts = {cf, -1, 0};
      expectLayerMatch(c, w, part, expertChoiceConfig(16, cf), &ropts,
                       (batch + 1) / 2 * 2);
    }
  }
  // BPR does not apply: a call that asks for it routes the same, BPR off.
  vmoe_run_options_t bpr = {1.0, 1, 0};
  expectLayerMatch(c, w, x, expertChoiceConfig(16, 1.0), &bpr);
  vmoe_routing_stats_t stats;
  ASSERT_EQ(vmoe_session_routing_stats(c.session, 0, &stats, &msg),
            VMOE_STATUS_OK);
  EXPECT_EQ(stats.bpr, 0);
  EXPECT_EQ(stats.k, 1u);
  // Expert choice has no k.
  std::vector<float> y;
  vmoe_run_options_t k1 = {0, -1, 1};
  ASSERT_EQ(runLayer(c, x, &k1, y, &msg), VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_STREQ(msg.text, "k 1: no MoE layer of this module routes by top-k "
                         "(expert choice has no k)");
}

// Ties: equal gates go to the lower token (zero router weights make every
// gate 1/E, so each expert takes the first C tokens of each group).
TEST(RoutingExpertChoice, TiesGoToTheLowerToken) {
  Layer l;
  l.attrs = "num_experts = 4, group_size = 8, capacity = 4, routing = "
            "#vmoe.routing<expert_choice>";
  ref::MoeWeights w = randomLayerWeights(l, 15);
  for (float &v : w.routerKernel.data)
    v = 0.0f;
  Compiled c;
  compileLayer(layerMlir(l, w), c);
  if (HasFatalFailure())
    return;
  ref::Tensor x = randomInput(l, 4, 16);
  ref::MoeConfig config = expertChoiceConfig(8, 0);
  config.capacityFactor.reset();
  config.capacity = 4;
  expectLayerMatch(c, w, x, config, nullptr);
  std::vector<double> shares(4);
  vmoe_message_t msg;
  ASSERT_EQ(vmoe_session_image_coverage(c.session, 0, shares.data(), 4, &msg),
            VMOE_STATUS_OK);
  for (double share : shares)
    EXPECT_DOUBLE_EQ(share, 0.5); // the first 4 of each image's 8 tokens
}

} // namespace
