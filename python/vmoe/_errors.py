"""The exceptions of the vmoe package.

Every error of the runtime becomes an exception of the class of its status
(runtime/include/vmoe/runtime.h), carrying the runtime's message; they all
derive from vmoe.Error, and where a built-in exception means the same thing
also from it (an invalid argument is a ValueError, a refused signature a
PermissionError, ...).
"""


class Error(Exception):
    """Base class of the vmoe package's errors. `status` names the runtime
    status ("INVALID_MODULE", ...)."""

    status = "ERROR"


class InvalidArgumentError(Error, ValueError):
    status = "INVALID_ARGUMENT"


class InvalidModuleError(Error):
    status = "INVALID_MODULE"


class UnsupportedVersionError(Error):
    status = "UNSUPPORTED_VERSION"


class UnsupportedError(Error):
    status = "UNSUPPORTED"


class IoError(Error, OSError):
    status = "IO_ERROR"


class OutOfMemoryError(Error, MemoryError):
    status = "OUT_OF_MEMORY"


class KernelFailedError(Error):
    status = "KERNEL_FAILED"


class FailedPreconditionError(Error):
    status = "FAILED_PRECONDITION"


class InternalError(Error):
    status = "INTERNAL"


class PermissionDeniedError(Error, PermissionError):
    status = "PERMISSION_DENIED"


class CompileError(Error):
    """vmoe-compile failed; `returncode`, `stderr` and `command` say how."""

    status = "COMPILE_FAILED"

    def __init__(self, message, returncode=None, stderr="", command=()):
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr
        self.command = list(command)


class ToolNotFoundError(Error, FileNotFoundError):
    """The vmoe-compile executable was not found (see vmoe.find_compiler)."""

    status = "TOOL_NOT_FOUND"


# Indexed by vmoe_status_t.
_BY_STATUS = [None, InvalidArgumentError, InvalidModuleError,
              UnsupportedVersionError, UnsupportedError, IoError,
              OutOfMemoryError, KernelFailedError, FailedPreconditionError,
              InternalError, PermissionDeniedError]


def error_class(status):
    """The exception class of a vmoe_status_t (the native part raises it)."""
    if 0 < status < len(_BY_STATUS):
        return _BY_STATUS[status]
    return Error
