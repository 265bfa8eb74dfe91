"""vmoe: run V-MoE modules compiled by vmoe-compile, from Python.

    import vmoe
    module = vmoe.load("fm.vmoe")               # or the module's bytes
    logits = module.run(images)                 # numpy (N, H, W, C) float32
    logits = module.run(images, capacity_factor=0.5, bpr=True, threads=2)
    stats = module.routing_stats()              # what routing did, as a dict
    vmoe.compile("config.json", weights="weights.npz", output="fm.vmoe",
                 batch=8, max_capacity_factor=2.0)

The runtime's C API (runtime/include/vmoe/runtime.h) through a pybind11
extension; vmoe.compile runs the vmoe-compile executable. Errors of the
runtime raise vmoe.Error subclasses with the runtime's message.
"""
from ._build import VERSION as __version__
from ._compile import COMPILER_ENV, compile, find_compiler
from ._errors import (CompileError, Error, FailedPreconditionError,
                      InternalError, InvalidArgumentError, InvalidModuleError,
                      IoError, KernelFailedError, OutOfMemoryError,
                      PermissionDeniedError, ToolNotFoundError,
                      UnsupportedError, UnsupportedVersionError)
from ._runtime import (Module, Session, compute_capacity, load,
                       runtime_format_version)

__all__ = [
    "__version__", "Module", "Session", "load", "compile", "find_compiler",
    "compute_capacity", "runtime_format_version", "COMPILER_ENV", "Error",
    "CompileError", "FailedPreconditionError", "InternalError",
    "InvalidArgumentError", "InvalidModuleError", "IoError",
    "KernelFailedError", "OutOfMemoryError", "PermissionDeniedError",
    "ToolNotFoundError", "UnsupportedError", "UnsupportedVersionError",
]
