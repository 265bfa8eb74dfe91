/*
 * vmoe runtime C API.
 *
 * Loads a vmoe module file (made by vmoe-compile), verifies it, and runs it
 * on caller buffers. Plain C, no exceptions cross it, no hidden global
 * state: every object is an opaque handle the caller creates and destroys.
 *
 * Errors: every fallible function returns a vmoe_status_t (VMOE_STATUS_OK is
 * 0) and takes a `vmoe_message_t *message` as its last argument; on failure
 * the runtime writes a readable, NUL-terminated description there (pass NULL
 * to skip it). On success the message is left untouched.
 *
 * Threads: a module is immutable once loaded and may be shared by any number
 * of sessions on any threads (it is reference counted; sessions hold a
 * reference). Any number of different modules may be loaded at once, each
 * running its own code. A session has one caller at a time; different
 * sessions may run concurrently. A vmoe_session_run that finds another call
 * of the same session under way returns VMOE_STATUS_FAILED_PRECONDITION at
 * once (it neither waits nor touches the running call); the routing
 * statistics and profile readers must not overlap a run of their session
 * either. Each session owns its arena and its thread pool, and
 * vmoe_session_run allocates nothing.
 *
 * Trust: vmoe_module_load_* verifies the whole file (structure, then every
 * index, offset, size, shape and launch bound) before anything runs, so a
 * malformed file gets an error, not a crash. Every byte is covered by
 * XXH3-128 digests written by the compiler: the metadata and the executables
 * are checked at every load, the weights too unless the caller opts out
 * (vmoe_module_load_options_t.verify_weights). A digest catches corruption,
 * not a forger. A module carries native code: creating a CPU session loads
 * (and so runs the constructors of) the module's shared object. Load modules
 * only from sources you would take an executable from, or set trusted keys
 * (vmoe_module_load_options_t.trusted_keys): then only a module signed by
 * one of them loads, and the check happens before any of its code is mapped.
 *
 * Files: a module file is mapped, not read, and must not change while it is
 * loaded: replace a module file by writing a new file and renaming it over
 * the old one (what vmoe-compile does), never by rewriting it in place. A
 * caller that cannot promise that loads with `copy` set.
 */
#ifndef VMOE_RUNTIME_H
#define VMOE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define VMOE_API __attribute__((visibility("default")))
#else
#define VMOE_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status and messages ------------------------------------------------ */

typedef enum vmoe_status_t {
  VMOE_STATUS_OK = 0,
  /* A bad argument: null pointer, wrong dtype/shape/batch, option range. */
  VMOE_STATUS_INVALID_ARGUMENT = 1,
  /* The module failed verification (malformed or inconsistent file). */
  VMOE_STATUS_INVALID_MODULE = 2,
  /* The module's format version, kernel ABI or requirements are newer or
   * older than this runtime implements. */
  VMOE_STATUS_UNSUPPORTED_VERSION = 3,
  /* This host or device cannot run the module (architecture, CPU features,
   * device not built in). */
  VMOE_STATUS_UNSUPPORTED = 4,
  VMOE_STATUS_IO_ERROR = 5,
  VMOE_STATUS_OUT_OF_MEMORY = 6,
  /* A kernel returned nonzero. */
  VMOE_STATUS_KERNEL_FAILED = 7,
  /* The call needs state that does not exist yet (e.g. statistics before a
   * successful run), or the session is running a call on another thread. */
  VMOE_STATUS_FAILED_PRECONDITION = 8,
  VMOE_STATUS_INTERNAL = 9,
  /* Trusted keys are set and the module is unsigned, signed by another key,
   * or its signature does not match its contents. */
  VMOE_STATUS_PERMISSION_DENIED = 10,
} vmoe_status_t;

#define VMOE_MESSAGE_CAPACITY 1024
typedef struct vmoe_message_t {
  char text[VMOE_MESSAGE_CAPACITY];
} vmoe_message_t;

/* "OK", "INVALID_ARGUMENT", ...; never NULL. */
VMOE_API const char *vmoe_status_name(vmoe_status_t status);

/* The module format version this runtime reads (module_format.h). */
VMOE_API void vmoe_runtime_format_version(uint32_t *major, uint32_t *minor);

/* The runtime's vmoe version, "MAJOR.MINOR.PATCH" (vmoe/version.h has the
 * version a program was compiled against as macros). */
VMOE_API const char *vmoe_runtime_version(void);

/* ---- element types ------------------------------------------------------- */

/* Same numbering as DType in format/schema/module.fbs. */
typedef enum vmoe_dtype_t {
  VMOE_DTYPE_INVALID = 0,
  VMOE_DTYPE_F32 = 1,
  VMOE_DTYPE_F16 = 2,
  VMOE_DTYPE_BF16 = 3,
  VMOE_DTYPE_F64 = 4,
  VMOE_DTYPE_I8 = 5,
  VMOE_DTYPE_U8 = 6,
  VMOE_DTYPE_I16 = 7,
  VMOE_DTYPE_I32 = 8,
  VMOE_DTYPE_I64 = 9,
  VMOE_DTYPE_BOOL = 10,
} vmoe_dtype_t;

/* Bytes per element; 0 for an unknown dtype. */
VMOE_API size_t vmoe_dtype_size(vmoe_dtype_t dtype);
/* "f32", "bf16", ...; "invalid" for an unknown dtype. */
VMOE_API const char *vmoe_dtype_name(vmoe_dtype_t dtype);

/* ---- capacity --------------------------------------------------------------
 */

/* The expert capacity of google-research/vmoe for top-k routing:
 *   C = roundup4(ceil(group_size * k * capacity_factor / num_experts))
 * evaluated in double, left to right (a value a hair above an integer ceils
 * up, as in vmoe). Fails for capacity_factor <= 0, NaN, or C < 1. */
VMOE_API vmoe_status_t vmoe_compute_capacity(uint64_t group_size, uint32_t k,
                                             uint32_t num_experts,
                                             double capacity_factor,
                                             uint32_t *out_capacity,
                                             vmoe_message_t *message);

/* ---- modules ---------------------------------------------------------------
 */

typedef struct vmoe_module_t vmoe_module_t;

/* Maps the file read-only (mmap) and verifies it with the default options
 * (vmoe_module_load_file_ex). Constants are used in place from the mapping
 * (a kernel cannot write them); constants a CPU session copies are read-only
 * too. Binding offsets must be multiples of 64 bytes. */
VMOE_API vmoe_status_t vmoe_module_load_file(const char *path,
                                             vmoe_module_t **out_module,
                                             vmoe_message_t *message);

typedef enum vmoe_memory_mode_t {
  /* The runtime copies the bytes into pages it owns, read-only once filled
   * (no kernel can write through an in-place constant); the caller may free
   * its buffer as soon as the call returns. */
  VMOE_MEMORY_COPY = 0,
  /* The runtime uses the caller's bytes in place; they must stay valid and
   * unchanged until the module's last reference is released, and be aligned
   * to VMOE_SEGMENT_BASE_ALIGNMENT (4096) so segments keep their alignment
   * (a misaligned buffer is refused with a message). */
  VMOE_MEMORY_BORROW = 1,
} vmoe_memory_mode_t;

VMOE_API vmoe_status_t vmoe_module_load_memory(const void *data, size_t size,
                                               vmoe_memory_mode_t mode,
                                               vmoe_module_t **out_module,
                                               vmoe_message_t *message);

/* ---- load options -------------------------------------------------------- */

typedef enum vmoe_verify_weights_t {
  /* Check the digest of every weight segment at load (the default). */
  VMOE_VERIFY_WEIGHTS_ALL = 0,
  /* Skip the weight segments' digests: for trusted multi-GB modules whose
   * load time matters (a full check reads every byte: see docs/). The
   * metadata and the executables are still checked; a corrupt weight then
   * gives wrong outputs, not an error. */
  VMOE_VERIFY_WEIGHTS_NONE = 1,
} vmoe_verify_weights_t;

/* Size of one trusted Ed25519 public key. */
#define VMOE_PUBLIC_KEY_SIZE 32

typedef struct vmoe_module_load_options_t {
  vmoe_verify_weights_t verify_weights;
  /* trusted_key_count Ed25519 public keys, VMOE_PUBLIC_KEY_SIZE bytes each,
   * back to back (the key of a `vmoe-compile --generate-signing-key` .pub
   * file). With keys set, a module loads only when signed by one of them;
   * else PERMISSION_DENIED, before any of its code is mapped. A runtime
   * built without signature support (VMOE_RUNTIME_SIGNATURES off) answers
   * UNSUPPORTED. Read during the call only. */
  const uint8_t *trusted_keys;
  uint32_t trusted_key_count;
  /* vmoe_module_load_file_ex: nonzero reads the file into memory the module
   * owns (read-only once filled) instead of mapping it, for callers that cannot promise the file is
   * not rewritten while loaded. vmoe_module_load_memory_ex: must agree with
   * its mode (nonzero with VMOE_MEMORY_BORROW is refused). */
  int32_t copy;
} vmoe_module_load_options_t;

/* Defaults: check every weight, no trusted keys (signatures unchecked), map
 * files. */
VMOE_API void
vmoe_module_load_options_init(vmoe_module_load_options_t *options);

/* vmoe_module_load_file and vmoe_module_load_memory with options; NULL
 * options are the defaults, which the plain functions use. */
VMOE_API vmoe_status_t vmoe_module_load_file_ex(
    const char *path, const vmoe_module_load_options_t *options,
    vmoe_module_t **out_module, vmoe_message_t *message);
VMOE_API vmoe_status_t vmoe_module_load_memory_ex(
    const void *data, size_t size, vmoe_memory_mode_t mode,
    const vmoe_module_load_options_t *options, vmoe_module_t **out_module,
    vmoe_message_t *message);

typedef struct vmoe_module_integrity_t {
  /* The module carries a signature; key_id names its key (the first 8 bytes
   * of BLAKE2b-512 of the public key; zeros when unsigned). */
  int32_t is_signed;
  uint8_t key_id[8];
  /* The signature was checked against a trusted key at load. */
  int32_t signature_verified;
  /* Every weight segment's digest was checked at load. */
  int32_t weights_verified;
} vmoe_module_integrity_t;

VMOE_API void vmoe_module_integrity(const vmoe_module_t *module,
                                    vmoe_module_integrity_t *out_integrity);

/* Reference counting: a loaded module has one reference; each session holds
 * one more. The module is freed when the count drops to zero. */
VMOE_API void vmoe_module_retain(vmoe_module_t *module);
VMOE_API void vmoe_module_release(vmoe_module_t *module);

typedef struct vmoe_module_info_t {
  uint32_t format_major;
  uint32_t format_minor;
  const char *name;        /* "" when absent */
  const char *producer;    /* "" when absent */
  const char *config_json; /* "" when absent */
  uint64_t config_json_size;
  uint32_t class_count;
  uint32_t input_count;
  uint32_t output_count;
  uint32_t moe_layer_count;
  int64_t max_batch;
  int64_t batch_multiple;
  uint32_t segment_count;
  uint32_t constant_count;
  uint32_t executable_count;
  uint32_t kernel_count;
  uint32_t dispatch_count;
  uint64_t arena_size;
  uint64_t arena_alignment;
  uint64_t constant_bytes; /* sum of the constants' segment lengths */
  uint64_t file_size;
} vmoe_module_info_t;

/* Strings point into the module and live as long as it. */
VMOE_API void vmoe_module_info(const vmoe_module_t *module,
                               vmoe_module_info_t *out_info);

/* The compiler that wrote the module: its vmoe version ("0.6.0") and the
 * git revision it was built from (a short hash, "-dirty" appended for a tree
 * with uncommitted changes). "" for modules written before vmoe 0.6.0, which
 * do not record them. Strings live as long as the module. */
VMOE_API const char *
vmoe_module_compiler_version(const vmoe_module_t *module);
VMOE_API const char *
vmoe_module_compiler_revision(const vmoe_module_t *module);

/* Class name `index` (a classifier's label), or NULL when out of range. */
VMOE_API const char *vmoe_module_class_name(const vmoe_module_t *module,
                                            uint32_t index);

typedef struct vmoe_tensor_info_t {
  const char *name;
  vmoe_dtype_t dtype;
  uint32_t rank;
  const int64_t *shape; /* at the maximum batch */
  int32_t batch_dim;    /* -1: no batch dim */
  uint64_t size_bytes;  /* at the maximum batch */
} vmoe_tensor_info_t;

VMOE_API vmoe_status_t vmoe_module_input_info(const vmoe_module_t *module,
                                              uint32_t index,
                                              vmoe_tensor_info_t *out_info,
                                              vmoe_message_t *message);
VMOE_API vmoe_status_t vmoe_module_output_info(const vmoe_module_t *module,
                                               uint32_t index,
                                               vmoe_tensor_info_t *out_info,
                                               vmoe_message_t *message);

typedef struct vmoe_moe_layer_info_t {
  const char *name;
  uint32_t num_experts;      /* E */
  uint32_t k;                /* experts per token */
  uint32_t group_size;       /* S */
  uint32_t num_groups;       /* G at the maximum batch */
  uint64_t num_tokens;       /* G * S at the maximum batch */
  uint32_t tokens_per_image; /* T */
  double default_capacity_factor;
  double max_capacity_factor;
  uint32_t max_capacity; /* compiled C_max */
  int32_t default_bpr;   /* 0 or 1 */
  int32_t has_stats;     /* the layer records routing statistics */
  /* Nonzero: compiled with an explicit capacity, max_capacity in every call
   * (both capacity factors are then 0 and a call sets none). */
  int32_t fixed_capacity;
  /* The capacity rule of a layer with a capacity factor, vmoe's
   * compute_capacity options: C = ceil(v) (Python's half-to-even round(v)
   * when capacity_round is nonzero), rounded up to a multiple of
   * capacity_multiple_of, v = routed * capacity_factor / num_experts with
   * routed = group_size * k of the call (group_size for expert choice). */
  uint32_t capacity_multiple_of;
  int32_t capacity_round;
  /* Nonzero: expert-choice routing (vmoe's NoisyTopItemsPerExpertRouter):
   * each expert takes the C tokens of a group with its largest gates; k is 1
   * and a call's k does not apply. */
  int32_t expert_choice;
} vmoe_moe_layer_info_t;

VMOE_API vmoe_status_t vmoe_module_moe_layer_info(
    const vmoe_module_t *module, uint32_t index,
    vmoe_moe_layer_info_t *out_info, vmoe_message_t *message);

typedef enum vmoe_executable_format_t {
  VMOE_EXECUTABLE_CPU_SHARED_OBJECT = 1,
  VMOE_EXECUTABLE_CUDA = 2,
} vmoe_executable_format_t;

typedef struct vmoe_executable_info_t {
  vmoe_executable_format_t format;
  const char *name;          /* "" when absent */
  const char *target_triple; /* CPU; "" otherwise */
  const char *cpu_features;  /* CPU; "" otherwise */
  uint64_t size_bytes;       /* shared object, or PTX plus cubins */
  uint32_t ptx_sm;           /* CUDA: SM of the PTX; 0 without PTX */
  uint32_t cubin_count;      /* CUDA */
} vmoe_executable_info_t;

VMOE_API vmoe_status_t vmoe_module_executable_info(
    const vmoe_module_t *module, uint32_t index,
    vmoe_executable_info_t *out_info, vmoe_message_t *message);

/* ---- sessions --------------------------------------------------------------
 */

typedef struct vmoe_session_t vmoe_session_t;

typedef enum vmoe_device_t {
  VMOE_DEVICE_CPU = 0,
  /* An NVIDIA GPU through the CUDA driver, loaded at run time
   * (libcuda.so.1); UNSUPPORTED where there is none. */
  VMOE_DEVICE_CUDA = 1,
} vmoe_device_t;

/* ---- collectives (expert parallelism) ---------------------------------------
 *
 * A module compiled for N expert shards (vmoe_module_shard_info) is one
 * rank's part of a model: N processes (or threads) each run their part on
 * their own images, and the dispatch buffers of every MoE layer travel
 * between them by all-to-all. The runtime moves no bytes between processes
 * itself: the caller supplies the exchange as this plain struct of function
 * pointers (the optional vmoe_mpi library implements it with MPI; tests use
 * threads of one process). Every rank must call the same functions in the
 * same order (session creation, every run), as MPI's collectives do.
 *
 * Each function returns VMOE_STATUS_OK or an error with a message; a failed
 * exchange fails the session call that made it (the session stays usable
 * only if every rank failed the same way; callers normally end the job).
 * A function must fail, not hang, when a peer is gone: give it a deadline.
 */
typedef struct vmoe_collective_t {
  /* Passed back as the first argument of every function. */
  void *user;
  /* This process's rank in [0, size), and the number of ranks. */
  uint32_t rank;
  uint32_t size;
  /* Sends bytes [j * chunk_bytes, (j + 1) * chunk_bytes) of `send` to rank
   * j and receives rank j's chunk into the same place of `recv`, for every
   * j (j == rank included). The regions do not overlap. */
  vmoe_status_t (*all_to_all)(void *user, const void *send, void *recv,
                              uint64_t chunk_bytes, vmoe_message_t *message);
  /* Every rank contributes `bytes` bytes of `send`; rank j's land at
   * recv + j * bytes on every rank. Small buffers (consistency checks). */
  vmoe_status_t (*all_gather)(void *user, const void *send, void *recv,
                              uint64_t bytes, vmoe_message_t *message);
  /* Returns once every rank has called it. (The runtime itself lines the
   * ranks up with all_gather; barrier is for the caller's own steps.) */
  vmoe_status_t (*barrier)(void *user, vmoe_message_t *message);
} vmoe_collective_t;

/* The expert shard a module holds. */
typedef struct vmoe_shard_info_t {
  /* Nonzero: the module is rank `rank` of `size` parts of one model. */
  int32_t sharded;
  uint32_t rank;
  uint32_t size;
  /* Identifies the compile; the same in every part of it. */
  uint64_t model_id[2];
} vmoe_shard_info_t;

/* Zeroed (sharded 0) for a module that is not a shard. */
VMOE_API void vmoe_module_shard_info(const vmoe_module_t *module,
                                     vmoe_shard_info_t *out_info);

typedef struct vmoe_session_options_t {
  vmoe_device_t device;
  /* Threads that run each dispatch's workgroups, the caller included;
   * 0: one per online CPU. */
  uint32_t thread_count;
  /* Capacity factor for every MoE layer; 0: each layer's default. Must be
   * > 0 and <= each layer's compiled maximum. */
  double capacity_factor;
  /* Batch Prioritized Routing: -1: each layer's default; 0: off; 1: on. */
  int32_t bpr;
  /* Nonzero: time every dispatch of every run (a clock read per dispatch);
   * read the totals with vmoe_session_profile. */
  int32_t profile;
  /* VMOE_DEVICE_CUDA: which GPU (the driver's ordinal); 0 by default. */
  uint32_t device_ordinal;
  /* VMOE_DEVICE_CUDA: nonzero (the default) runs the schedule as CUDA
   * graphs, one per setting of capacity, BPR and batch, captured on its
   * first run and replayed after; 0 launches the dispatches one by one. A
   * driver without graphs, or a capture that fails, falls back to launches
   * too. */
  int32_t cuda_graphs;
  /* VMOE_DEVICE_CUDA with graphs: how many graphs the session keeps, 1 to
   * VMOE_CUDA_GRAPH_CACHE_MAX; a new setting beyond that replaces the least
   * recently used graph. VMOE_CUDA_GRAPH_CACHE_DEFAULT by default. */
  uint32_t cuda_graph_cache;
  /* Experts per token (k) of every top-k MoE layer; 0: each layer's compiled
   * k. Must be in [1, each layer's compiled k]; the capacity follows it
   * (vmoe recomputes it from S * k). Expert-choice layers ignore it. */
  uint32_t num_selected_experts;
  /* An expert-sharded module's exchange between its ranks (NULL: none). A
   * sharded module needs one whose size is the module's shard count and
   * whose rank is the module's; a module that is not sharded ignores it.
   * Read at creation; the struct and what it points to must outlive the
   * session. vmoe_session_create is then collective: every rank checks that
   * all ranks hold parts of the same compile, each rank once; every
   * vmoe_session_run checks that all ranks run the same batch, capacity
   * factor, BPR and k. CPU only. */
  const vmoe_collective_t *collective;
} vmoe_session_options_t;

/* Bounds of vmoe_session_options_t.cuda_graph_cache. The default covers the
 * usual sweeps (four capacity factors with BPR on and off at a batch or two)
 * without recapturing. */
#define VMOE_CUDA_GRAPH_CACHE_DEFAULT 16
#define VMOE_CUDA_GRAPH_CACHE_MAX 1024

/* Defaults: CPU, one thread per CPU, each layer's capacity factor and BPR;
 * CUDA graphs on, up to VMOE_CUDA_GRAPH_CACHE_DEFAULT of them. */
VMOE_API void vmoe_session_options_init(vmoe_session_options_t *options);

/* Loads the module's executables for the device (once per module), checks
 * that the host can run them, and allocates the arena and scratch.
 * `options` may be NULL (defaults). The session retains the module. */
VMOE_API vmoe_status_t vmoe_session_create(
    vmoe_module_t *module, const vmoe_session_options_t *options,
    vmoe_session_t **out_session, vmoe_message_t *message);
VMOE_API void vmoe_session_destroy(vmoe_session_t *session);

/* Threads the session runs on (resolved from thread_count). */
VMOE_API uint32_t vmoe_session_thread_count(const vmoe_session_t *session);

/* A caller buffer. Its dtype and shape must match the signature, with the
 * batch dim anywhere in 1..max_batch (a multiple of batch_multiple) and the
 * same batch for every tensor; size_bytes is the buffer's capacity and must
 * hold the tensor. Inputs are only read. */
typedef struct vmoe_tensor_t {
  vmoe_dtype_t dtype;
  uint32_t rank;
  const int64_t *shape;
  void *data;
  uint64_t size_bytes;
} vmoe_tensor_t;

typedef struct vmoe_run_options_t {
  /* For every MoE layer in this call; 0: the session's. Must be > 0 and
   * <= each layer's compiled maximum. */
  double capacity_factor;
  /* -1: the session's; 0: off; 1: on. */
  int32_t bpr;
  /* Experts per token of every top-k MoE layer in this call; 0: the
   * session's. In [1, each layer's compiled k]. */
  uint32_t num_selected_experts;
} vmoe_run_options_t;

/* Every field "as the session's" (0, -1, 0). Initialise run options with it
 * (or zero the whole struct and set bpr): fields added later are then
 * defaults too. */
VMOE_API void vmoe_run_options_init(vmoe_run_options_t *options);

/* Runs the schedule once. `options` may be NULL. Checks every input and
 * output against the signature before any kernel runs. A second caller while
 * a run of this session is under way gets VMOE_STATUS_FAILED_PRECONDITION. */
VMOE_API vmoe_status_t vmoe_session_run(
    vmoe_session_t *session, const vmoe_tensor_t *inputs, uint32_t input_count,
    const vmoe_tensor_t *outputs, uint32_t output_count,
    const vmoe_run_options_t *options, vmoe_message_t *message);

/* ---- routing statistics of the last successful run ------------------------
 */

typedef struct vmoe_routing_stats_t {
  uint32_t capacity;      /* C used by the call */
  double capacity_factor; /* the factor C came from; 0: a fixed capacity */
  int32_t bpr;            /* 0 or 1 */
  uint32_t num_experts;
  uint32_t k; /* experts per token in the call (1 for expert choice) */
  uint32_t image_count; /* the call's batch */
  uint64_t token_count; /* image_count * tokens_per_image */
  uint32_t group_count; /* groups holding those tokens */
  /* Assignments of tokens to experts (counting those past capacity), those
   * that fit in capacity (sum over groups and experts of min(count, C)),
   * and the difference. */
  uint64_t assignments;
  uint64_t assignments_kept;
  uint64_t assignments_dropped;
} vmoe_routing_stats_t;

/* Fails with FAILED_PRECONDITION before the first successful run or for a
 * layer without statistics (vmoe_moe_layer_info_t.has_stats). */
VMOE_API vmoe_status_t vmoe_session_routing_stats(
    const vmoe_session_t *session, uint32_t layer,
    vmoe_routing_stats_t *out_stats, vmoe_message_t *message);

/* Per expert: assignments (out_assigned) and kept assignments (out_kept) of
 * the last call, summed over its groups. Either pointer may be NULL;
 * expert_count must equal the layer's num_experts. */
VMOE_API vmoe_status_t vmoe_session_expert_load(
    const vmoe_session_t *session, uint32_t layer, uint64_t *out_assigned,
    uint64_t *out_kept, uint32_t expert_count, vmoe_message_t *message);

/* Per image of the last call: the share of its tokens (0..1) with at least
 * one kept assignment, i.e. that reached an expert rather than only the
 * residual. image_count must equal vmoe_routing_stats_t.image_count. */
VMOE_API vmoe_status_t vmoe_session_image_coverage(
    const vmoe_session_t *session, uint32_t layer, double *out_shares,
    uint32_t image_count, vmoe_message_t *message);

/* Per-dispatch wall time, in nanoseconds summed over the session's
 * successful runs, for a session created with `profile` set: out_ns[d] for
 * dispatch d < dispatch_count (vmoe_module_info_t.dispatch_count); the number
 * of runs summed goes to *out_runs. FAILED_PRECONDITION without profiling. */
VMOE_API vmoe_status_t vmoe_session_profile(const vmoe_session_t *session,
                                            uint64_t *out_ns,
                                            uint32_t dispatch_count,
                                            uint64_t *out_runs,
                                            vmoe_message_t *message);

/* The kernel name of dispatch `index` ("" when out of range or unnamed;
 * "all_to_all" for an expert shard's exchange step). */
VMOE_API const char *vmoe_module_dispatch_kernel(const vmoe_module_t *module,
                                                 uint32_t index);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* VMOE_RUNTIME_H */
