"""Compiling from Python: runs the vmoe-compile executable (the compiler is
MLIR-based C++; the package does not link it)."""
import json
import os
import shutil
import subprocess
import tempfile

from . import _build
from ._errors import CompileError, ToolNotFoundError

COMPILER_ENV = "VMOE_COMPILE"

# Flags whose value is on|off rather than a boolean switch.
_ON_OFF_FLAGS = {"bpr"}


def _package_compiler():
    """Where the build put vmoe-compile for this copy of the package: the
    build tree's, or the one installed with the package (relative to it)."""
    path = _build.COMPILER
    if not path:
        return None
    if not os.path.isabs(path):
        path = os.path.normpath(
            os.path.join(os.path.dirname(os.path.abspath(__file__)), path))
    return path


def find_compiler():
    """The vmoe-compile executable: $VMOE_COMPILE if set, else the one next
    to the package (the build tree's bin/ when run from the build tree;
    <prefix>/bin when installed), else the first on PATH. Raises
    ToolNotFoundError when there is none."""
    env = os.environ.get(COMPILER_ENV)
    if env:
        if os.path.isfile(env) and os.access(env, os.X_OK):
            return env
        raise ToolNotFoundError(
            f"{COMPILER_ENV}={env} is not an executable file")
    looked = []
    path = _package_compiler()
    if path:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        looked.append(path)
    found = shutil.which("vmoe-compile")
    if found:
        return found
    looked.append("PATH")
    raise ToolNotFoundError(
        "vmoe-compile not found (looked at " + ", ".join(looked) +
        f"); build or install it, or set {COMPILER_ENV} to its path")


def _flag(name, value):
    """--name-with-dashes=value; True gives --name."""
    flag = "--" + name.replace("_", "-")
    if name in _ON_OFF_FLAGS and isinstance(value, bool):
        return f"{flag}={'on' if value else 'off'}"
    if value is True:
        return flag
    if value is False:
        return f"{flag}=false"
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, (str, int, float)):
        raise TypeError(f"compile flag {name}: a str, number, bool or path, "
                        f"not {type(value).__name__}")
    return f"{flag}={value}"


def compile(model=None, *, weights=None, output=None, preset=None,
            timeout=None, **flags):
    """Compiles a model with vmoe-compile (see find_compiler).

    model: a vmoe config (.json path, or a dict written to a temporary
      file; its "name" names the module unless name= does) or an .mlir
      path; None with preset=NAME.
    weights: the checkpoint for a config or preset (.npz, .safetensors, a
      vmoe checkpoint).
    output: where to write the result. Without it, the module's bytes are
      returned (load them with vmoe.load(bytes)), or the text for
      emit="mlir" (and the other text kinds).
    flags: any other vmoe-compile flag, as name=value: batch=8,
      max_capacity_factor=2.0, random_weights=1, cpu="x86-64-v3",
      bpr=True, emit="mlir", sign_key="deploy.key", ... (underscores become
      dashes; True gives a bare --flag; None leaves a flag out).

    Returns the output path when `output` is given. Raises CompileError
    (with the compiler's messages) when vmoe-compile fails.
    """
    command = [find_compiler()]
    with tempfile.TemporaryDirectory(prefix="vmoe-compile-") as tmp:
        if isinstance(model, dict):
            config = os.path.join(tmp, "config.json")
            with open(config, "w") as f:
                json.dump(model, f)
            command.append(config)
            if isinstance(model.get("name"), str) and "name" not in flags:
                flags = dict(flags, name=model["name"])
        elif model is not None:
            command.append(os.fspath(model))
        if weights is not None:
            command.append(_flag("weights", weights))
        if preset is not None:
            command.append(_flag("preset", preset))
        for name, value in flags.items():
            if value is not None:
                command.append(_flag(name, value))
        emit = flags.get("emit")
        text = emit is not None and emit != "module"
        target = None
        if not text:
            target = (os.fspath(output) if output is not None
                      else os.path.join(tmp, "model.vmoe"))
            command += ["-o", target]
        proc = subprocess.run(command, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)
        stderr = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            raise CompileError(
                f"vmoe-compile failed (exit {proc.returncode}): "
                f"{stderr.strip()}", proc.returncode, stderr, command)
        if text:
            if output is None:
                return proc.stdout.decode("utf-8", "replace")
            with open(output, "wb") as f:
                f.write(proc.stdout)
            return os.fspath(output)
        if output is not None:
            return target
        with open(target, "rb") as f:
            return f.read()
