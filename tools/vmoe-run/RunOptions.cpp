//===- RunOptions.cpp - vmoe-run's command line ---------------------------===//

#include "RunOptions.h"

#include "../common/ToolSupport.h"

#include <cmath>
#include <cstring>

namespace vmoe::tools::run {

const char *const kUsage =
    "usage: vmoe-run MODULE [IMAGE...] [options]\n"
    "Options take their value as --flag=VALUE or --flag VALUE.\n"
    "  IMAGE...                PNG, JPEG, PGM or PPM files to classify, each\n"
    "                          converted to the model's channels, resized to\n"
    "                          its input size (TF2 bilinear, as vmoe's eval\n"
    "                          resize) and mapped to [-1, 1]; printed as\n"
    "                          image 0, 1, ... in the order given\n"
    "  --input FILE            a .npy of images: float32 in [-1, 1] or uint8\n"
    "                          pixels, any number of them (run in chunks of\n"
    "                          the compiled batch), or one image file\n"
    "                          (PNG, JPEG, PGM, PPM; default: one batch of\n"
    "                          random values);\n"
    "                          --input=@FILE is the same\n"
    "  --labels FILE.npy       int32/uint8 labels: report the accuracy\n"
    "  --classes FILE          class names, one per line (e.g. for a module\n"
    "                          compiled from .mlir); default: the module's\n"
    "  --show N                images whose classes are printed (default 8)\n"
    "  --seed N                seed of the random input (default 0)\n"
    "  --output FILE.npy       write the module's first output; repeat for\n"
    "                          the next outputs; --output=@FILE is the same\n"
    "  --capacity-factor X     capacity factor of every MoE layer for this\n"
    "                          run (0 < X <= the compiled maximum; default:\n"
    "                          the module's)\n"
    "  --bpr on|off            Batch Prioritized Routing (default: the\n"
    "                          module's)\n"
    "  --num-selected-experts K\n"
    "                          experts per token (k) of every top-k MoE layer\n"
    "                          for this run (1 <= K <= the compiled k; the\n"
    "                          capacity follows it; default: the module's)\n"
    "  --threads N             worker threads (default: one per CPU)\n"
    "  --device cpu|cuda[:N]   where to run (default cpu; cuda needs a module\n"
    "                          compiled with --target=cuda and an NVIDIA GPU)\n"
    "  --cuda-graphs on|off    CUDA: replay each knob setting as a CUDA graph\n"
    "                          (default on; off launches kernels one by one)\n"
    "  --cuda-graph-cache N    CUDA: graphs kept, least recently used dropped\n"
    "                          (1..1024, default 16)\n"
    "  --repeat N              run N times and report the median time\n"
    "  --top N                 classes to print per image (default 5)\n"
    "  --quiet                 print only errors, the accuracy, the timing\n"
    "                          and the summary line\n"
    "  --profile               print the time of every dispatch (kernel)\n"
    "  --info                  print what the module is (compiler, target,\n"
    "                          CPU features, inputs, MoE layers, config) and\n"
    "                          exit\n"
    "  --trusted-key FILE      load only modules signed by this key (a .pub\n"
    "                          of vmoe-compile --generate-signing-key);\n"
    "                          repeat for several keys\n"
    "  --verify-weights all|none\n"
    "                          check the weights' digests at load (default\n"
    "                          all; none: only for trusted large modules)\n"
    "  --copy-module           read the module into memory instead of\n"
    "                          mapping it (for files that may be rewritten)\n"
    "  --mpi                   run as one rank of `mpirun -np N vmoe-run\n"
    "                          NAME.vmoe ...` (on by itself under mpirun):\n"
    "                          rank R loads NAME.rankR.vmoe when NAME.vmoe\n"
    "                          does not exist (vmoe-compile --expert-shards),\n"
    "                          runs its contiguous slice of the images (a\n"
    "                          multiple of N routing groups in all), and\n"
    "                          rank 0 prints and writes the gathered results\n"
    "  --mpi-timeout SECONDS   longest wait for the other ranks in one\n"
    "                          exchange before every rank fails (default\n"
    "                          300)\n"
    "  --version               print the versions of vmoe-run and the runtime\n"
    "  --help                  print this text\n";

std::string shapeString(const int64_t *shape, uint32_t rank) {
  std::string s = "[";
  for (uint32_t i = 0; i < rank; ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

/// A file argument: "@FILE" (iree-run-module's spelling) is FILE.
std::string fileArg(const char *v) { return v[0] == '@' ? v + 1 : v; }

/// "on"/"off" as 1/0; -1 for anything else.
int onOff(const char *v) {
  return std::strcmp(v, "on") == 0 ? 1 : std::strcmp(v, "off") == 0 ? 0 : -1;
}

/// An option that takes a value: `apply` stores it, or returns what is wrong
/// with it.
struct ValueOption {
  const char *name;
  const char *(*apply)(const char *v, Options &o);
};

using Opts = Options;
const ValueOption kValueOptions[] = {
    {"--input",
     [](const char *v, Opts &o) -> const char * {
       o.input = fileArg(v);
       return nullptr;
     }},
    {"--labels",
     [](const char *v, Opts &o) -> const char * {
       o.labels = fileArg(v);
       return nullptr;
     }},
    {"--classes",
     [](const char *v, Opts &o) -> const char * {
       o.classes = fileArg(v);
       return nullptr;
     }},
    {"--output",
     [](const char *v, Opts &o) -> const char * {
       o.outputs.push_back(fileArg(v));
       return nullptr;
     }},
    {"--show",
     [](const char *v, Opts &o) -> const char * {
       long long n;
       o.show = parseInt(v, 0, INT64_MAX, n) ? n : -1;
       return o.show < 0 ? "--show needs a non-negative integer" : nullptr;
     }},
    {"--seed",
     [](const char *v, Opts &o) -> const char * {
       long long n;
       if (!parseInt(v, 0, INT64_MAX, n))
         return "--seed needs a non-negative integer";
       o.seed = static_cast<uint64_t>(n);
       return nullptr;
     }},
    {"--capacity-factor",
     [](const char *v, Opts &o) -> const char * {
       double &cf = o.capacityFactor;
       return parseDouble(v, cf) && cf > 0.0 && std::isfinite(cf)
                  ? nullptr
                  : "--capacity-factor needs a positive number";
     }},
    {"--bpr",
     [](const char *v, Opts &o) -> const char * {
       o.bpr = onOff(v);
       return o.bpr < 0 ? "--bpr takes on or off" : nullptr;
     }},
    {"--num-selected-experts",
     [](const char *v, Opts &o) -> const char * {
       long long n;
       if (!parseInt(v, 1, 4096, n))
         return "--num-selected-experts needs an integer in [1, 4096]";
       o.numSelectedExperts = static_cast<uint32_t>(n);
       return nullptr;
     }},
    {"--threads",
     [](const char *v, Opts &o) -> const char * {
       long long n;
       if (!parseInt(v, 1, 4096, n))
         return "--threads needs an integer in [1, 4096]";
       o.threads = static_cast<uint32_t>(n);
       return nullptr;
     }},
    {"--device",
     [](const char *v, Opts &o) -> const char * {
       long long n = 0;
       o.device =
           std::strncmp(v, "cuda", 4) == 0 ? VMOE_DEVICE_CUDA : VMOE_DEVICE_CPU;
       o.deviceOrdinal = 0;
       if (std::strcmp(v, "cpu") == 0 || std::strcmp(v, "cuda") == 0)
         return nullptr;
       if (std::strncmp(v, "cuda:", 5) != 0 || !parseInt(v + 5, 0, 1023, n))
         return "--device takes cpu, cuda or cuda:N";
       o.deviceOrdinal = static_cast<uint32_t>(n);
       return nullptr;
     }},
    {"--cuda-graphs",
     [](const char *v, Opts &o) -> const char * {
       o.cudaGraphs = onOff(v);
       return o.cudaGraphs < 0 ? "--cuda-graphs takes on or off" : nullptr;
     }},
    {"--cuda-graph-cache",
     [](const char *v, Opts &o) -> const char * {
       long long n;
       if (!parseInt(v, 1, VMOE_CUDA_GRAPH_CACHE_MAX, n))
         return "--cuda-graph-cache needs an integer in [1, 1024]";
       o.cudaGraphCache = static_cast<uint32_t>(n);
       return nullptr;
     }},
    {"--repeat",
     [](const char *v, Opts &o) -> const char * {
       long long n;
       if (!parseInt(v, 1, 1000000, n))
         return "--repeat needs an integer in [1, 1000000]";
       o.repeat = static_cast<int>(n);
       return nullptr;
     }},
    {"--top",
     [](const char *v, Opts &o) -> const char * {
       long long n;
       if (!parseInt(v, 0, 1000000, n))
         return "--top needs a non-negative integer";
       o.top = static_cast<int>(n);
       return nullptr;
     }},
    {"--trusted-key",
     [](const char *v, Opts &o) -> const char * {
       o.trustedKeys.push_back(fileArg(v));
       return nullptr;
     }},
    {"--mpi-timeout",
     [](const char *v, Opts &o) -> const char * {
       long long n;
       if (!parseInt(v, 1, 86400, n))
         return "--mpi-timeout needs an integer in [1, 86400]";
       o.mpiTimeout = static_cast<uint32_t>(n);
       return nullptr;
     }},
    {"--verify-weights",
     [](const char *v, Opts &o) -> const char * {
       int all = std::strcmp(v, "all") == 0;
       o.verifyWeights = all;
       return all || std::strcmp(v, "none") == 0
                  ? nullptr
                  : "--verify-weights takes all or none";
     }},
};

/// The options that take no value; null for any other.
bool *switchOf(const ArgParser &args, Options &o) {
  return args.is("--help")          ? &o.help
         : args.is("--version")     ? &o.version
         : args.is("--quiet")       ? &o.quiet
         : args.is("--profile")     ? &o.profile
         : args.is("--info")        ? &o.info
         : args.is("--copy-module") ? &o.copyModule
         : args.is("--mpi")         ? &o.mpi
                                    : nullptr;
}

} // namespace

int parseArgs(int argc, char **argv, Options &o) {
  ArgParser args(kTool, kUsage, argc, argv);
  while (args.next()) {
    if (bool *flag = switchOf(args, o)) {
      if (!args.noValue())
        return 2;
      *flag = true;
      if (o.help || o.version)
        return 0;
      continue;
    }
    const ValueOption *option = nullptr;
    for (const ValueOption &candidate : kValueOptions)
      if (args.is(candidate.name))
        option = &candidate;
    if (option) {
      const char *v = args.value();
      if (!v)
        return 2;
      if (const char *error = option->apply(v, o))
        return args.bad(error);
    } else if (args.isOption()) {
      return args.unknown();
    } else if (o.module.empty()) {
      o.module = args.arg();
    } else {
      o.imageFiles.push_back(args.arg());
    }
  }
  if (o.module.empty())
    return usageError(kTool, "no module given", kUsage);
  return 0;
}

} // namespace vmoe::tools::run
