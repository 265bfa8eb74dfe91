/*
 * classify.c - run a vmoe module from C.
 *
 * Loads a module made by vmoe-compile, prints what it is, runs it on a
 * deterministic batch of images (values in [-1, 1]) at the capacity factor
 * given, and prints each image's top class and what routing did in every
 * MoE layer. Plain C99 on the runtime's C API (vmoe/runtime.h).
 *
 *   classify MODULE [CAPACITY_FACTOR]
 */
#include <vmoe/runtime.h>
#include <vmoe/version.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check(vmoe_status_t status, const vmoe_message_t *message) {
  if (status == VMOE_STATUS_OK)
    return 0;
  fprintf(stderr, "classify: %s: %s\n", vmoe_status_name(status),
          message->text);
  return 1;
}

/* The index of the largest of n values (the first on ties). */
static int64_t argmax(const float *values, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (values[i] > values[best])
      best = i;
  return best;
}

/* Runs the module once on `input` and prints the classes and routing. */
static int run(vmoe_module_t *module, double capacity_factor) {
  vmoe_message_t message;
  vmoe_module_info_t info;
  vmoe_tensor_info_t in, out;
  vmoe_module_info(module, &info);
  if (info.input_count != 1 || info.output_count < 1) {
    fprintf(stderr, "classify: the module should have one input\n");
    return 1;
  }
  if (check(vmoe_module_input_info(module, 0, &in, &message), &message) ||
      check(vmoe_module_output_info(module, 0, &out, &message), &message))
    return 1;
  if (in.dtype != VMOE_DTYPE_F32 || out.dtype != VMOE_DTYPE_F32 ||
      out.rank != 2) {
    fprintf(stderr, "classify: expected float32 images and logits\n");
    return 1;
  }

  float *images = malloc(in.size_bytes);
  float *logits = malloc(out.size_bytes);
  if (!images || !logits) {
    fprintf(stderr, "classify: out of memory\n");
    free(images);
    free(logits);
    return 1;
  }
  for (uint64_t i = 0; i < in.size_bytes / sizeof(float); ++i)
    images[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;

  vmoe_session_options_t options;
  vmoe_session_options_init(&options);
  options.thread_count = 1;
  vmoe_session_t *session = NULL;
  int rc = check(vmoe_session_create(module, &options, &session, &message),
                 &message);
  if (rc == 0) {
    vmoe_tensor_t input = {in.dtype, in.rank, in.shape, images, in.size_bytes};
    vmoe_tensor_t output = {out.dtype, out.rank, out.shape, logits,
                            out.size_bytes};
    vmoe_run_options_t run_options = {capacity_factor, -1};
    rc = check(vmoe_session_run(session, &input, 1, &output, 1, &run_options,
                                &message),
               &message);
  }
  for (int64_t b = 0; rc == 0 && b < out.shape[0]; ++b) {
    int64_t top = argmax(logits + b * out.shape[1], out.shape[1]);
    const char *name = vmoe_module_class_name(module, (uint32_t)top);
    printf("image %lld: class %lld%s%s\n", (long long)b, (long long)top,
           name && *name ? " " : "", name ? name : "");
  }
  for (uint32_t l = 0; rc == 0 && l < info.moe_layer_count; ++l) {
    vmoe_routing_stats_t stats;
    if (vmoe_session_routing_stats(session, l, &stats, &message) ==
        VMOE_STATUS_OK)
      printf("MoE layer %u: capacity %u, kept %llu of %llu assignments\n", l,
             stats.capacity, (unsigned long long)stats.assignments_kept,
             (unsigned long long)stats.assignments);
  }
  vmoe_session_destroy(session);
  free(images);
  free(logits);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: classify MODULE [CAPACITY_FACTOR]\n");
    return 2;
  }
  double capacity_factor = argc == 3 ? atof(argv[2]) : 0.0;
  printf("vmoe runtime %s (compiled against %s)\n", vmoe_runtime_version(),
         VMOE_VERSION_STRING);

  vmoe_message_t message;
  vmoe_module_t *module = NULL;
  if (check(vmoe_module_load_file(argv[1], &module, &message), &message))
    return 1;
  vmoe_module_info_t info;
  vmoe_module_info(module, &info);
  const char *version = vmoe_module_compiler_version(module);
  printf("module %s: %u MoE layer(s), batch %lld, compiled by vmoe %s\n",
         *info.name ? info.name : "(unnamed)", info.moe_layer_count,
         (long long)info.max_batch, *version ? version : "(unknown)");
  int rc = run(module, capacity_factor);
  vmoe_module_release(module);
  return rc;
}
