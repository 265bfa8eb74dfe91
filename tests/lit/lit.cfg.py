# lit configuration for the vmoe lit tests. The folders below mirror the
# source tree: dialects/ tests the vmoe dialect and its passes, tools/ the
# command-line tools.
import os

import lit.formats
from lit.llvm import llvm_config

config.name = "vmoe"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.vmoe_obj_root, "tests", "lit")

llvm_config.with_system_environment(["HOME", "TMPDIR"])
llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [config.vmoe_tools_dir, config.llvm_tools_dir]
config.substitutions.append(("%vmoe_src", config.vmoe_src_root))
config.substitutions.append(("%vmoe_version", config.vmoe_version))
llvm_config.add_tool_substitutions(["vmoe-opt", "vmoe-compile", "vmoe-run", "vmoe-bench", "FileCheck", "not", "count"],
                                   tool_dirs)

# ptxas (CUDA toolkit, optional): the PTX tests that assemble need it.
import shutil
ptxas = shutil.which("ptxas") or "/usr/local/cuda/bin/ptxas"
for root in ("CUDA_HOME", "CUDA_PATH"):
    if os.environ.get(root):
        ptxas = os.path.join(os.environ[root], "bin", "ptxas")
if os.access(ptxas, os.X_OK):
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", ptxas))

# Sanitized builds (scripts/sanitize.sh): ASan reserves terabytes of shadow
# address space, so tests under an address-space limit cannot run there.
if getattr(config, "vmoe_sanitize", "") == "address":
    config.available_features.add("asan")

# The host CPU's flags, for tests that run modules compiled for other CPUs.
try:
    with open("/proc/cpuinfo") as cpuinfo:
        host_flags = next((line.split(":", 1)[1].split() for line in cpuinfo
                           if line.startswith("flags")), [])
except OSError:
    host_flags = []
if "amx_bf16" in host_flags:
    config.available_features.add("host-amx-bf16")
