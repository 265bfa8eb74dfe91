"""OpenBLAS's kernels ("core") against the best ones the host supports.

Debian's OpenBLAS is built with DYNAMIC_ARCH: at load time it picks one set of
kernels from the CPU's model number. A CPU newer than the table of that
OpenBLAS version can get an old fallback: on an AVX-512 Xeon that 0.3.21 did
not know, its Prescott (SSE3) kernels ran an S/32 GEMM at 27 GFLOP/s against
146 with OPENBLAS_CORETYPE=SkylakeX, and every ratio against PyTorch was
inflated 2 to 100 times. This module reads the core OpenBLAS chose
(openblas_get_corename) and decides, from the CPU flags in /proc/cpuinfo, the
best core of that OpenBLAS version that the host can run; the benchmark
harness then runs PyTorch with OPENBLAS_CORETYPE set to it and records both.

The decision is plain functions of (core name, flags, vendor) so that a test
can cover any host; the ctypes part reads the library a process has loaded.
"""
import ctypes
import os

# x86-64 cores of OpenBLAS 0.3.21's DYNAMIC_ARCH table (the names
# OPENBLAS_CORETYPE accepts and openblas_get_corename returns), each with the
# rank of its kernels' instruction set: a core of a lower rank is older. Names
# of newer OpenBLAS versions are ranked too, so that a newer library's own
# choice is never replaced by an older core, but only 0.3.21's are proposed.
CORE_RANKS = {
    "Katmai": 0, "Coppermine": 0, "Northwood": 0, "Banias": 0, "Athlon": 0,
    "Opteron": 0,
    "Prescott": 1, "Opteron_SSE3": 1,                             # SSE3
    "Core2": 2, "Penryn": 2, "Dunnington": 2, "Atom": 2, "Barcelona": 2,
    "Nano": 2, "Bobcat": 2,                                       # SSSE3 / SSE4a
    "Nehalem": 3,                                                 # SSE4.2
    "Sandybridge": 4, "Bulldozer": 4,                             # AVX
    "Piledriver": 5, "Steamroller": 5, "Excavator": 5,            # AVX + FMA
    "Haswell": 6, "Zen": 6, "Dhyana": 6,                          # AVX2 + FMA
    "SkylakeX": 7,                                                # AVX-512
    "Cooperlake": 8,                                              # AVX-512 + BF16
    "SapphireRapids": 9,                      # AVX-512 + AMX (OpenBLAS >= 0.3.22)
}
KNOWN_0_3_21 = set(CORE_RANKS) - {"SapphireRapids"}

AVX512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
AMD_VENDORS = ("AuthenticAMD", "HygonGenuine")


def best_core(flags, vendor="GenuineIntel", arch="x86_64"):
    """The best OpenBLAS 0.3.21 core whose kernels this host can run, from its
    /proc/cpuinfo flags (a set of names) and vendor id; None off x86-64 or on a
    CPU without SSE3 (Linux names SSE3 "pni")."""
    if arch not in ("x86_64", "AMD64"):
        return None
    flags = set(flags)
    amd = vendor in AMD_VENDORS
    if AVX512 <= flags:
        return "Cooperlake" if "avx512_bf16" in flags else "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Zen" if amd else "Haswell"
    if "avx" in flags:
        if amd:
            return "Piledriver" if "fma" in flags else "Bulldozer"
        return "Sandybridge"
    if "sse4_2" in flags:
        return "Nehalem"
    if "ssse3" in flags:
        return "Core2"
    if "pni" in flags:
        return "Prescott"
    return None


def decide(core, flags, vendor="GenuineIntel", arch="x86_64"):
    """What to do about the core OpenBLAS chose (None: not OpenBLAS).

    Returns {"core", "best", "force"}: force is the core to set in
    OPENBLAS_CORETYPE when `core` is older than the best one the host runs,
    else None (the core is the best, newer than this table, or unknown)."""
    best = best_core(flags, vendor, arch)
    force = None
    if core is not None and best is not None and core in CORE_RANKS:
        if CORE_RANKS[core] < CORE_RANKS[best]:
            force = best
    return {"core": core, "best": best, "force": force}


def host_cpu(cpuinfo_path="/proc/cpuinfo"):
    """(flags, vendor, model name) of the first CPU in /proc/cpuinfo."""
    flags, vendor, model = set(), "", ""
    try:
        with open(cpuinfo_path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("flags", "Features") and not flags:
                    flags = set(value.split())
                elif key == "vendor_id" and not vendor:
                    vendor = value.strip()
                elif key == "model name" and not model:
                    model = value.strip()
    except OSError:
        pass
    return flags, vendor, model


def isa_name(flags, arch="x86_64"):
    """A short name of the host's widest vector ISA, for tables."""
    flags = set(flags)
    if arch in ("aarch64", "arm64"):
        return "AArch64 " + ("SVE" if "sve" in flags else "NEON")
    parts = []
    if AVX512 <= flags:
        parts.append("AVX-512")
        if "avx512_bf16" in flags:
            parts.append("AVX512-BF16")
        if "amx_bf16" in flags:
            parts.append("AMX-BF16")
    elif "avx2" in flags:
        parts.append("AVX2" + ("+FMA" if "fma" in flags else ""))
    elif "avx" in flags:
        parts.append("AVX")
    else:
        parts.append("SSE")
    return " + ".join(parts)


def loaded_blas():
    """Paths of the BLAS libraries this process has mapped (Debian's PyTorch
    links libblas.so.3, which the alternatives system points at OpenBLAS's
    openblas-pthread/libblas.so.3 when libopenblas0-pthread is installed)."""
    seen = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                base = os.path.basename(path)
                if "blas" in base and ".so" in base and path not in seen:
                    seen.append(path)
    except OSError:
        pass
    return seen


def openblas_info(paths=None):
    """{"blas", "openblas", "core", "config", "threads"} of the OpenBLAS among
    the loaded libraries (core and the rest None when none is OpenBLAS)."""
    paths = loaded_blas() if paths is None else paths
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            return {"blas": path, "openblas": True,
                    "core": lib.openblas_get_corename().decode(),
                    "config": lib.openblas_get_config().decode(),
                    "threads": int(lib.openblas_get_num_threads())}
        except (OSError, AttributeError):
            continue
    return {"blas": paths[0] if paths else None, "openblas": False, "core": None,
            "config": None, "threads": None}


def probe(library="libblas.so.3"):
    """The decision for the BLAS that PyTorch will load, made in this process
    before torch is imported (so that OPENBLAS_CORETYPE can still be set):
    loads `library` (Debian's PyTorch links libblas.so.3) by itself."""
    flags, vendor, _ = host_cpu()
    try:
        ctypes.CDLL(library)
    except OSError:
        pass
    info = openblas_info()
    out = decide(info["core"], flags, vendor, os.uname().machine)
    out.update({"blas": info["blas"], "config": info["config"],
                "isa": isa_name(flags, os.uname().machine)})
    return out


if __name__ == "__main__":
    # Prints the decision for this host as JSON (one OpenBLAS thread is enough).
    import json
    import sys
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    print(json.dumps(probe(*sys.argv[1:2])))
