//===- CapacityTest.cpp - The capacity rule, and its way into kernels -----===//
//
// C = roundup4(ceil(S*K*cf/E)) in double as in google-research/vmoe
// (../shared/docs/vmoe-reference.md section 6), computed by the runtime per
// call and handed to kernels as a push constant.
//
//===----------------------------------------------------------------------===//

#include "Capacity.h"
#include "CapacityCases.h"
#include "TestSupport.h"

#include <cmath>

namespace vmoe {
namespace test {
namespace {

uint32_t capacity(uint64_t s, uint32_t k, uint32_t e, double cf) {
  uint32_t c = 0;
  vmoe_message_t message;
  EXPECT_EQ(vmoe_compute_capacity(s, k, e, cf, &c, &message), VMOE_STATUS_OK)
      << message.text;
  return c;
}

struct TableRow {
  uint32_t groupSize;
  uint32_t c32cf105, c32cf05, c8cf105, c8cf15;
};

// The table of section 6 (group = 8 images, K = 2).
const TableRow kTable[] = {
    {400, 28, 16, 108, 152},      {1576, 104, 52, 416, 592},
    {2056, 136, 68, 540, 772},    {1160, 80, 40, 308, 436},
    {4616, 304, 148, 1212, 1732},
};

TEST(Capacity, MatchesTheVmoeTable) {
  for (const TableRow &row : kTable) {
    SCOPED_TRACE(row.groupSize);
    EXPECT_EQ(capacity(row.groupSize, 2, 32, 1.05), row.c32cf105);
    EXPECT_EQ(capacity(row.groupSize, 2, 32, 0.5), row.c32cf05);
    EXPECT_EQ(capacity(row.groupSize, 2, 8, 1.05), row.c8cf105);
    EXPECT_EQ(capacity(row.groupSize, 2, 8, 1.5), row.c8cf15);
  }
}

TEST(Capacity, B16At224) {
  // 1576*2*1.05/32 = 103.42500000000001 in double -> 104.
  EXPECT_EQ(capacity(1576, 2, 32, 1.05), 104u);
}

TEST(Capacity, HairAboveAnIntegerCeilsUp) {
  // 3200*2*0.07/8 is 56 in exact arithmetic but 56.00000000000001 in
  // double; vmoe ceils that to 57 and rounds up to 60, not 56.
  double value = 3200.0 * 2 * 0.07 / 8;
  ASSERT_GT(value, 56.0);
  EXPECT_EQ(capacity(3200, 2, 8, 0.07), 60u);
  // K=1: 3200*0.07/2 = 112.00000000000001 -> 116.
  EXPECT_EQ(capacity(3200, 1, 2, 0.07), 116u);
  // An exact integer stays: 400*2*1.5/8 = 150 -> 152; 1576*2*1.5/8 = 591
  // -> 592.
  EXPECT_EQ(capacity(400, 2, 8, 1.5), 152u);
}

TEST(Capacity, ReleasedS32EvalOverride) {
  // cf=4.0, E=8, K=2: C = S = 400, so no drops are possible.
  EXPECT_EQ(capacity(400, 2, 8, 4.0), 400u);
}

TEST(Capacity, RefusesBadFactors) {
  uint32_t c;
  vmoe_message_t message;
  EXPECT_EQ(vmoe_compute_capacity(400, 2, 8, 0.0, &c, &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(message.text).find("must be a finite number > 0"),
            std::string::npos)
      << message.text;
  EXPECT_EQ(vmoe_compute_capacity(400, 2, 8, -1.0, &c, &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(vmoe_compute_capacity(400, 2, 8, std::nan(""), &c, &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(vmoe_compute_capacity(400, 2, 8, INFINITY, &c, &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(vmoe_compute_capacity(400, 2, 0, 1.0, &c, &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  // A tiny factor still gives ceil(tiny) = 1 -> 4.
  EXPECT_EQ(capacity(400, 2, 8, 1e-12), 4u);
}

TEST(Capacity, SharedTableOfCases) {
  // The runtime implements top-K routing's form: ceil, a multiple of 4.
  int checked = 0;
  for (const CapacityCase &c : kCapacityCases) {
    if (!c.topKForm())
      continue;
    SCOPED_TRACE(c.what);
    uint32_t value = 0;
    vmoe_message_t message;
    message.text[0] = 0;
    vmoe_status_t status = vmoe_compute_capacity(
        c.groupSize, c.k, c.numExperts, c.capacityFactor, &value, &message);
    if (c.expected == 0) {
      EXPECT_EQ(status, VMOE_STATUS_INVALID_ARGUMENT) << value;
      EXPECT_NE(message.text[0], 0);
    } else {
      ASSERT_EQ(status, VMOE_STATUS_OK) << message.text;
      EXPECT_EQ(value, uint64_t(c.expected));
    }
    ++checked;
  }
  EXPECT_GE(checked, 35);
}

TEST(Capacity, TheWholeRuleOfTheSharedTable) {
  // A layer's own rule (vmoe.capacity's multiple_of and round), which the
  // runtime evaluates per call for modules that record one.
  for (const CapacityCase &c : kCapacityCases) {
    SCOPED_TRACE(c.what);
    uint64_t value = 0;
    vmoe_message_t message;
    message.text[0] = 0;
    vmoe_status_t status = computeCapacityRule(
        c.numTokens(), c.numExperts, c.capacityFactor,
        static_cast<uint32_t>(c.multipleOf), c.round, &value, &message);
    if (c.expected == 0) {
      EXPECT_EQ(status, VMOE_STATUS_INVALID_ARGUMENT) << value;
      EXPECT_NE(message.text[0], 0);
    } else {
      ASSERT_EQ(status, VMOE_STATUS_OK) << message.text;
      EXPECT_EQ(value, uint64_t(c.expected));
    }
  }
}

/// Runs the echo module and returns [capacity, bpr, batch, 42].
std::vector<int64_t> echo(vmoe_session_t *session,
                          const vmoe_run_options_t *options,
                          vmoe_status_t expected = VMOE_STATUS_OK,
                          std::string *messageOut = nullptr) {
  std::vector<int64_t> out(4, -1);
  std::vector<int64_t> shape = {4};
  vmoe_tensor_t t = tensor(VMOE_DTYPE_I64, shape, out.data(), 32);
  vmoe_message_t message;
  message.text[0] = 0;
  EXPECT_EQ(vmoe_session_run(session, nullptr, 0, &t, 1, options, &message),
            expected)
      << message.text;
  if (messageOut)
    *messageOut = message.text;
  return out;
}

TEST(CapacityPushConstant, ReachesTheKernelExactly) {
  // B/16 at 224 with E=32, K=2, compiled up to cf 2.0.
  uint32_t cMax = capacity(1576, 2, 32, 2.0);
  ModuleWriter w;
  buildEchoModule(w, 1576, 2, 32, 1.05, 2.0, cMax);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 1);

  // The layer default (1.05).
  std::vector<int64_t> out = echo(s.session, nullptr);
  EXPECT_EQ(out[0], 104);
  EXPECT_EQ(out[1], 0);
  EXPECT_EQ(out[2], 1);
  EXPECT_EQ(out[3], 42);

  // Per-call overrides, each the exact vmoe value.
  for (double cf : {0.5, 1.0, 1.05, 1.25, 1.5, 2.0}) {
    vmoe_run_options_t options = {cf, -1};
    EXPECT_EQ(echo(s.session, &options)[0], capacity(1576, 2, 32, cf)) << cf;
  }
  vmoe_run_options_t options = {0.5, 1};
  out = echo(s.session, &options);
  EXPECT_EQ(out[0], 52);
  EXPECT_EQ(out[1], 1);
  // Without an override the session's setting returns.
  EXPECT_EQ(echo(s.session, nullptr)[0], 104);

  vmoe_routing_stats_t stats;
  vmoe_message_t message;
  EXPECT_EQ(vmoe_session_routing_stats(s.session, 0, &stats, &message),
            VMOE_STATUS_FAILED_PRECONDITION); // the layer records no stats
  EXPECT_NE(std::string(message.text).find("records no routing statistics"),
            std::string::npos);
}

TEST(CapacityPushConstant, TableThroughTheRuntime) {
  for (const TableRow &row : kTable) {
    for (uint32_t experts : {32u, 8u}) {
      ModuleWriter w;
      buildEchoModule(w, row.groupSize, 2, experts, 1.05, 1.5,
                      capacity(row.groupSize, 2, experts, 1.5));
      Loaded loaded = loadBytes(serialize(w));
      ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
      SessionHolder s;
      createSession(loaded.module, s, 1);
      vmoe_run_options_t options = {1.05, -1};
      EXPECT_EQ(echo(s.session, &options)[0],
                experts == 32 ? row.c32cf105 : row.c8cf105);
      options.capacity_factor = experts == 32 ? 0.5 : 1.5;
      EXPECT_EQ(echo(s.session, &options)[0],
                experts == 32 ? row.c32cf05 : row.c8cf15);
    }
  }
}

TEST(CapacityPushConstant, HairCaseThroughTheRuntime) {
  ModuleWriter w;
  buildEchoModule(w, 3200, 2, 8, 0.07, 0.07, 60);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 1);
  EXPECT_EQ(echo(s.session, nullptr)[0], 60);
}

TEST(CapacityPushConstant, ClampedToTheCompiledMaximum) {
  // C_max may stop at S (no expert gets more than S assignments per group):
  // S=400, E=8, K=2, cf=4.0 gives 400 = S; a module compiled with C_max=400
  // for cf up to 5.0 (which would give 500) passes C=400.
  ModuleWriter w;
  buildEchoModule(w, 400, 2, 8, 1.0, 5.0, 400);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 1);
  vmoe_run_options_t options = {5.0, -1};
  EXPECT_EQ(echo(s.session, &options)[0], 400);
}

TEST(CapacityPushConstant, OutOfRangeFactorIsRefusedWithBothValues) {
  ModuleWriter w;
  buildEchoModule(w, 400, 2, 8, 1.0, 1.25, capacity(400, 2, 8, 1.25));
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 1);
  std::string message;
  vmoe_run_options_t options = {1.5, -1};
  echo(s.session, &options, VMOE_STATUS_INVALID_ARGUMENT, &message);
  EXPECT_NE(message.find("capacity factor 1.5"), std::string::npos) << message;
  EXPECT_NE(message.find("compiled maximum 1.25"), std::string::npos)
      << message;
  EXPECT_NE(message.find("MoE layer 0 ('moe0')"), std::string::npos) << message;
  options.capacity_factor = -0.5;
  echo(s.session, &options, VMOE_STATUS_INVALID_ARGUMENT, &message);
  EXPECT_NE(message.find("capacity factor -0.5"), std::string::npos) << message;
  // A value a hair above the maximum is out of range too, and the message
  // tells the two apart.
  options.capacity_factor = std::nextafter(1.25, 2.0);
  echo(s.session, &options, VMOE_STATUS_INVALID_ARGUMENT, &message);
  EXPECT_NE(message.find("1.2500000000000002"), std::string::npos) << message;
  // The maximum itself is fine.
  options.capacity_factor = 1.25;
  EXPECT_EQ(echo(s.session, &options)[0], capacity(400, 2, 8, 1.25));
  // A bad BPR value.
  vmoe_run_options_t badBpr = {0, 2};
  echo(s.session, &badBpr, VMOE_STATUS_INVALID_ARGUMENT, &message);
  EXPECT_NE(message.find("BPR option 2"), std::string::npos) << message;

  // The session-wide factor is checked at creation.
  vmoe_session_options_t sessionOptions;
  vmoe_session_options_init(&sessionOptions);
  sessionOptions.capacity_factor = 2.0;
  vmoe_session_t *session = nullptr;
  vmoe_message_t text;
  EXPECT_EQ(
      vmoe_session_create(loaded.module, &sessionOptions, &session, &text),
      VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(text.text).find("capacity factor 2 is out of range"),
            std::string::npos)
      << text.text;
  EXPECT_EQ(session, nullptr);
}

TEST(CapacityPushConstant, SessionOptionsAndBprDefaults) {
  ModuleWriter w;
  buildEchoModule(w, 400, 2, 8, 1.0, 1.5, capacity(400, 2, 8, 1.5),
                  /*defaultBpr=*/true);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  {
    SessionHolder s;
    createSession(loaded.module, s, 1);
    std::vector<int64_t> out = echo(s.session, nullptr);
    EXPECT_EQ(out[0], capacity(400, 2, 8, 1.0));
    EXPECT_EQ(out[1], 1); // the layer default
    vmoe_run_options_t off = {0, 0};
    EXPECT_EQ(echo(s.session, &off)[1], 0);
  }
  {
    SessionHolder s;
    createSession(loaded.module, s, 1, /*capacityFactor=*/0.5, /*bpr=*/0);
    std::vector<int64_t> out = echo(s.session, nullptr);
    EXPECT_EQ(out[0], capacity(400, 2, 8, 0.5));
    EXPECT_EQ(out[1], 0);
    vmoe_run_options_t on = {1.5, 1};
    out = echo(s.session, &on);
    EXPECT_EQ(out[0], capacity(400, 2, 8, 1.5));
    EXPECT_EQ(out[1], 1);
  }
}

} // namespace
} // namespace test
} // namespace vmoe

namespace vmoe {
namespace test {
namespace {

/// The echo module with `layer` as its MoE layer, `requirements` as the
/// module's, and the push constants [capacity, k, batch, 42].
std::vector<uint8_t> echoLayerModule(MoeLayerDesc layer,
                                     uint64_t requirements) {
  ModuleWriter w;
  uint32_t exe = addTestExecutable(w);
  w.setBatch(1);
  w.addOutput({"constants", fb::DType::I64, {4}, -1});
  w.setArena(0);
  layer.name = "moe0";
  layer.numGroups = 1;
  layer.numTokens = layer.groupSize;
  layer.tokensPerImage = layer.groupSize;
  w.addMoeLayer(layer);
  w.setRequirements(requirements | VMOE_REQUIRES_K_KNOB);
  KernelDesc echo;
  echo.name = "echo";
  echo.executable = exe;
  echo.entry = "vmoe_test_echo_constants";
  echo.bindingCount = 1;
  echo.constantCount = 4;
  echo.writtenBindings = {true};
  uint32_t kernel = w.addKernel(echo);
  w.addDispatch(
      {kernel,
       {BindingDesc::output(0, 0, 32)},
       {PushConstantDesc::capacity(0), PushConstantDesc::k(0),
        PushConstantDesc::batchSize(), PushConstantDesc::literal(42)}});
  return serialize(w);
}

MoeLayerDesc topKLayer(uint32_t groupSize, uint32_t k, uint32_t experts,
                       double defaultCf, double maxCf, uint32_t maxCapacity) {
  MoeLayerDesc layer;
  layer.numExperts = experts;
  layer.k = k;
  layer.groupSize = groupSize;
  layer.defaultCapacityFactor = defaultCf;
  layer.maxCapacityFactor = maxCf;
  layer.maxCapacity = maxCapacity;
  return layer;
}

TEST(CapacityRule, TheLayersRuleReachesTheKernel) {
  // S = 10, k = 1, E = 4: v = 2.5 at cf 1; round (half to even) 2, multiple
  // of 1; vmoe's default rule would give 4.
  MoeLayerDesc layer = topKLayer(10, 1, 4, 1.0, 2.0, 5);
  layer.capacityRound = true;
  layer.capacityMultipleOf = 1;
  Loaded loaded =
      loadBytes(echoLayerModule(layer, VMOE_REQUIRES_CAPACITY_RULE));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 1);
  EXPECT_EQ(echo(s.session, nullptr)[0], 2);
  vmoe_run_options_t options = {1.4, -1, 0}; // v = 3.5 -> 4
  EXPECT_EQ(echo(s.session, &options)[0], 4);
  vmoe_moe_layer_info_t info;
  vmoe_message_t message;
  ASSERT_EQ(vmoe_module_moe_layer_info(loaded.module, 0, &info, &message),
            VMOE_STATUS_OK);
  EXPECT_EQ(info.capacity_round, 1);
  EXPECT_EQ(info.capacity_multiple_of, 1u);

  // A runtime that ignored the rule would compute other capacities: the
  // module must say that it needs it.
  Loaded unmarked = loadBytes(echoLayerModule(layer, 0));
  EXPECT_EQ(unmarked.status, VMOE_STATUS_INVALID_MODULE);
  EXPECT_EQ(unmarked.message, "MoE layer 0 has its own capacity rule but the "
                              "module does not require it");
  // An unknown requirement bit is refused as a newer module.
  Loaded newer = loadBytes(echoLayerModule(layer, 1ull << 40));
  EXPECT_NE(
      newer.message.find("module requires runtime features 0x10000000000"),
      std::string::npos)
      << newer.message;
  EXPECT_EQ(newer.status, VMOE_STATUS_UNSUPPORTED_VERSION);
}

TEST(CapacityRule, KPerCallReachesTheKernelAndScalesTheCapacity) {
  // B/16 at 224, E = 32, compiled k = 2 up to cf 2.0.
  MoeLayerDesc layer =
      topKLayer(1576, 2, 32, 1.05, 2.0, capacity(1576, 2, 32, 2.0));
  Loaded loaded = loadBytes(echoLayerModule(layer, 0));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 1);
  std::vector<int64_t> out = echo(s.session, nullptr);
  EXPECT_EQ(out[0], 104);
  EXPECT_EQ(out[1], 2);
  vmoe_run_options_t options;
  vmoe_run_options_init(&options);
  EXPECT_EQ(options.capacity_factor, 0.0);
  EXPECT_EQ(options.bpr, -1);
  EXPECT_EQ(options.num_selected_experts, 0u);
  EXPECT_EQ(echo(s.session, &options)[1], 2);
  options.capacity_factor = 1.05;
  options.num_selected_experts = 1;
  out = echo(s.session, &options);
  EXPECT_EQ(out[0], capacity(1576, 1, 32, 1.05)); // 52
  EXPECT_EQ(out[1], 1);
  std::string message;
  options.num_selected_experts = 3;
  echo(s.session, &options, VMOE_STATUS_INVALID_ARGUMENT, &message);
  EXPECT_EQ(message, "k 3 is out of range for MoE layer 0 ('moe0'): it must "
                     "be in [1, 2], the compiled k");
}

TEST(CapacityRule, FixedCapacityIgnoresFactorAndK) {
  MoeLayerDesc layer = topKLayer(16, 2, 4, 0.0, 0.0, 3);
  Loaded loaded = loadBytes(echoLayerModule(layer, 0));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 1);
  EXPECT_EQ(echo(s.session, nullptr)[0], 3);
  vmoe_run_options_t k1 = {0, -1, 1};
  std::vector<int64_t> out = echo(s.session, &k1);
  EXPECT_EQ(out[0], 3);
  EXPECT_EQ(out[1], 1);
  std::string message;
  vmoe_run_options_t cf = {0.5, -1, 0};
  echo(s.session, &cf, VMOE_STATUS_INVALID_ARGUMENT, &message);
  EXPECT_EQ(message, "capacity factor 0.5: no MoE layer of this module takes "
                     "one (each was compiled with a fixed capacity)");
  // A fixed capacity of 0 is no capacity.
  layer.maxCapacity = 0;
  EXPECT_EQ(loadBytes(echoLayerModule(layer, 0)).status,
            VMOE_STATUS_INVALID_MODULE);
}

TEST(CapacityRule, ExpertChoiceCountsTokensAndNeedsItsBit) {
  // Expert choice: C from S alone; S = 400, E = 8, cf 1.05 -> 56.
  MoeLayerDesc layer = topKLayer(400, 1, 8, 1.05, 2.0, 100);
  layer.expertChoice = true;
  Loaded loaded =
      loadBytes(echoLayerModule(layer, VMOE_REQUIRES_EXPERT_CHOICE));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 1);
  EXPECT_EQ(echo(s.session, nullptr)[0], capacity(400, 1, 8, 1.05));
  vmoe_moe_layer_info_t info;
  vmoe_message_t msg;
  ASSERT_EQ(vmoe_module_moe_layer_info(loaded.module, 0, &info, &msg),
            VMOE_STATUS_OK);
  EXPECT_EQ(info.expert_choice, 1);
  Loaded unmarked = loadBytes(echoLayerModule(layer, 0));
  EXPECT_EQ(unmarked.status, VMOE_STATUS_INVALID_MODULE);
  EXPECT_EQ(unmarked.message, "MoE layer 0 routes by expert choice but the "
                              "module does not require it");
  layer.k = 2;
  EXPECT_EQ(
      loadBytes(echoLayerModule(layer, VMOE_REQUIRES_EXPERT_CHOICE)).message,
      "MoE layer 0: expert choice needs k 1, got 2");
}

} // namespace
} // namespace test
} // namespace vmoe
