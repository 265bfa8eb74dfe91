"""Modules and sessions: the runtime's C API (runtime/include/vmoe/runtime.h)
through the native part, vmoe._vmoe."""
import copy as _copy
import math
import numbers
import os
import threading

from . import _vmoe
from ._errors import FailedPreconditionError, InvalidArgumentError
from ._keys import trusted_key_bytes

_DEVICES = {"cpu": 0, "cuda": 1}


def _capacity_factor(value):
    """None (the default), or a factor > 0 for the runtime to check against
    the compiled maximum. 0 means "default" in the C API: refuse it here."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("capacity_factor is a number, not "
                        f"{type(value).__name__}")
    value = float(value)
    if not value > 0 or math.isinf(value):
        raise InvalidArgumentError(
            f"capacity_factor must be > 0 and finite, not {value}")
    return value


def _bpr(value):
    if value is None:
        return -1
    if not isinstance(value, bool):
        raise TypeError("bpr is True, False or None (the default), not "
                        f"{type(value).__name__}")
    return int(value)


def _k(value):
    """None (the module's k), or experts per token for this call: 1 up to
    the compiled k (the runtime checks the upper bound)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"k is an integer or None, not {type(value).__name__}")
    if not 1 <= value <= 4096:
        raise InvalidArgumentError(f"k must be in [1, the compiled k], not {value}")
    return int(value)


def _threads(value):
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or value < 0:
        raise InvalidArgumentError(
            f"threads is a count >= 0 (0: one per CPU), not {value!r}")
    return int(value)


class Module:
    """A module file made by vmoe-compile, loaded and verified.

    Module(source, verify_weights=True, trusted_keys=None, copy=False)

    source: a path (str or os.PathLike) to a .vmoe file, which is mapped, or
      the module's bytes (bytes, bytearray, memoryview or any contiguous
      buffer), which the runtime copies.
    verify_weights: check the weight segments' digests at load (the default);
      False skips them for trusted multi-GB files (metadata and code are
      still checked).
    trusted_keys: a .pub file (vmoe-compile --generate-signing-key), 32 raw
      key bytes, or a list of them: only a module signed by one of them
      loads (PermissionDeniedError otherwise).
    copy: read the file into memory instead of mapping it (for files that
      may be rewritten while loaded).
    """

    def __init__(self, source, *, verify_weights=True, trusted_keys=None,
                 copy=False):
        keys = trusted_key_bytes(trusted_keys)
        if isinstance(source, (str, os.PathLike)):
            self.path = os.fspath(source)
            self._native = _vmoe.Module.load_file(
                self.path, bool(verify_weights), keys, bool(copy))
        else:
            try:
                data = memoryview(source).cast("B")
            except TypeError as e:
                raise TypeError("a module is a path or the module's bytes "
                                f"(one contiguous buffer): {e}") from None
            self.path = None
            self._native = _vmoe.Module.load_bytes(
                data, bool(verify_weights), keys)
        self._info = self._native.info()
        self._sessions = {}
        self._sessions_lock = threading.Lock()
        self._last_session = None

    def __repr__(self):
        if not hasattr(self, "_info"):
            return "<vmoe.Module (not loaded)>"
        where = self.path if self.path else "<bytes>"
        return (f"<vmoe.Module {self._info['name'] or '(unnamed)'} from "
                f"{where}: batch {self.batch}, image {self.image_shape}, "
                f"{self.num_classes} classes>")

    @property
    def info(self):
        """Everything the runtime tells about the module, as a dict (a copy):
        name, producer, format_version, batch, batch_multiple, inputs,
        outputs, image_shape, num_classes, class_names, moe_layers,
        num_experts, device, target_triple, cpu_features, executables,
        kernels, dispatches, arena_bytes, weight_bytes, file_size, signed,
        key_id, signature_verified, weights_verified, config_json, ..."""
        return _copy.deepcopy(self._info)

    @property
    def name(self):
        return self._info["name"]

    @property
    def batch(self):
        """The compiled (largest) batch of one call; run() takes any number
        of images and runs them in chunks of it."""
        return self._info["batch"]

    @property
    def batch_multiple(self):
        return self._info["batch_multiple"]

    @property
    def image_shape(self):
        """(H, W, C) of one image."""
        return self._info["image_shape"]

    @property
    def num_classes(self):
        return self._info["num_classes"]

    @property
    def class_names(self):
        """The class names the module carries, or None."""
        names = self._info["class_names"]
        return list(names) if names is not None else None

    @property
    def moe_layers(self):
        return _copy.deepcopy(self._info["moe_layers"])

    @property
    def num_experts(self):
        """E of each MoE layer."""
        return list(self._info["num_experts"])

    @property
    def device(self):
        """"cpu" or "cuda": what the module was compiled for."""
        return self._info["device"]

    @property
    def target(self):
        """The CPU target: (triple, features); None for a CUDA module."""
        if self._info["target_triple"] is None:
            return None
        return (self._info["target_triple"], self._info["cpu_features"])

    def session(self, **options):
        """A new Session on this module (see Session for the options)."""
        return Session(self, **options)

    def run(self, images, *, capacity_factor=None, bpr=None, k=None,
            threads=None, out=None):
        """Runs `images` on a CPU session of this module with `threads`
        threads (None or 0: one per CPU), created on first use and kept; the
        capacity factor and BPR apply to this call only. Returns the logits
        (see Session.run). Calls on one Module from several threads at once
        are refused (FailedPreconditionError): give each thread a Session."""
        key = _threads(threads)
        with self._sessions_lock:
            session = self._sessions.get(key)
            if session is None:
                session = self._sessions[key] = Session(self, threads=key)
        result = session.run(images, capacity_factor=capacity_factor,
                             bpr=bpr, k=k, out=out)
        self._last_session = session
        return result

    def routing_stats(self):
        """The routing statistics of the last Module.run (see
        Session.routing_stats)."""
        if self._last_session is None:
            raise FailedPreconditionError(
                "no routing statistics: Module.run has not run yet")
        return self._last_session.routing_stats()


class Session:
    """A session runs one module: it owns a thread pool and the arena, and
    serves one call at a time (a second concurrent call is refused with
    FailedPreconditionError; use one session per thread).

    Session(module, threads=0, device="cpu", device_ordinal=0,
            capacity_factor=None, bpr=None, profile=False, cuda_graphs=None)

    threads: threads per call, the caller's included (0: one per CPU).
    capacity_factor, bpr: the session's defaults (None: each MoE layer's
      compiled default); every call may override them.
    profile: time every dispatch (read with Session.profile()).
    cuda_graphs: device="cuda" only: True/False overrides the runtime's
      default (graphs on).
    """

    def __init__(self, module, *, threads=0, device="cpu", device_ordinal=0,
                 capacity_factor=None, bpr=None, profile=False,
                 cuda_graphs=None):
        if not isinstance(module, Module):
            raise TypeError("Session takes a vmoe.Module, not "
                            f"{type(module).__name__}")
        if device not in _DEVICES:
            raise InvalidArgumentError(
                f"device is 'cpu' or 'cuda', not {device!r}")
        if isinstance(device_ordinal, bool) or \
                not isinstance(device_ordinal, numbers.Integral) or \
                device_ordinal < 0:
            raise InvalidArgumentError(
                f"device_ordinal is an index >= 0, not {device_ordinal!r}")
        graphs = -1 if cuda_graphs is None else int(bool(cuda_graphs))
        self.module = module
        self._native = _vmoe.Session(
            module._native, _DEVICES[device], int(device_ordinal),
            _threads(threads), _capacity_factor(capacity_factor), _bpr(bpr),
            bool(profile), graphs)

    @property
    def threads(self):
        """The threads the session runs on."""
        return self._native.thread_count

    @property
    def busy(self):
        """True while a call of this session runs (on any thread)."""
        return self._native.busy

    @property
    def input_bytes_copied(self):
        """Bytes of input the last call copied: 0 for C-contiguous float32
        images whose count is a whole number of batch steps (the runtime
        reads them in place); the converted images for uint8 pixels; the
        last partial step otherwise (padded with zero images)."""
        return self._native.input_bytes_copied

    def run(self, images, *, capacity_factor=None, bpr=None, k=None,
            out=None):
        """Runs the model on `images` and returns its output (the logits,
        float32, shape (N, classes); a tuple for several outputs).

        images: numpy array (N, H, W, C) (or (N, H, W) for one channel):
          float32 in [-1, 1], C-contiguous, read in place without a copy
          (other layouts raise InvalidArgumentError: pass
          numpy.ascontiguousarray(images)); or uint8 pixels, converted as
          x / 255 * 2 - 1 (vmoe's value_range(-1, 1)). Any N >= 1: the
          images run in chunks of the compiled batch; a last chunk that is
          not a multiple of batch_multiple is padded with zero images.
        capacity_factor: this call's capacity factor, in (0, the compiled
          maximum]; None: the session's.
        bpr: Batch Prioritized Routing for this call (True/False); None: the
          session's.
        k: experts per token of every top-k MoE layer for this call, 1 up
          to the compiled k (the capacity follows it, as in vmoe); None: the
          module's.
        out: optional float32 array (N, classes), written in place.

        The GIL is released while the model runs.
        """
        return self._native.run(images, _capacity_factor(capacity_factor),
                                _bpr(bpr), _k(k), out)

    def routing_stats(self):
        """What routing did in the last successful call, summed over its
        chunks, as a dict: assignments, assignments_kept,
        assignments_dropped, kept_share over all MoE layers, and `layers`,
        one dict per MoE layer: layer, name, capacity, capacity_factor, bpr,
        num_experts, k, images, tokens, groups, assignments,
        assignments_kept, assignments_dropped, kept_share, expert_assigned
        and expert_kept (per expert), image_coverage (per image: the share
        of its tokens that reached an expert), min_image_coverage. Counts
        include the zero images that pad a last partial batch step;
        image_coverage covers the caller's images only."""
        return self._native.routing_stats()

    def profile(self):
        """Per-dispatch times summed over the session's runs (one run per
        chunk), for a session made with profile=True: {"runs": n,
        "dispatches": [{"kernel", "total_ms", "mean_ms"}, ...]}."""
        return self._native.profile()


def load(source, **options):
    """Loads a module: vmoe.Module(source, **options)."""
    return Module(source, **options)


def compute_capacity(group_size, k, num_experts, capacity_factor):
    """vmoe's expert capacity roundup4(ceil(S * k * cf / E)), evaluated as
    the runtime does."""
    return _vmoe.compute_capacity(group_size, k, num_experts,
                                  float(capacity_factor))


def runtime_format_version():
    """The module format version (major, minor) this runtime reads."""
    return _vmoe.runtime_format_version()
