/*
 * The smallest useful program on the runtime: load a module, run it once
 * with no inputs, print the status. Built to measure what the runtime adds
 * to an application (runtime.size test).
 */
#include "vmoe/runtime.h"

#include <stdio.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODULE\n", argv[0]);
    return 2;
  }
  vmoe_message_t message;
  vmoe_module_t *module = NULL;
  vmoe_session_t *session = NULL;
  vmoe_status_t status = vmoe_module_load_file(argv[1], &module, &message);
  if (!status)
    status = vmoe_session_create(module, NULL, &session, &message);
  if (!status)
    status = vmoe_session_run(session, NULL, 0, NULL, 0, NULL, &message);
  vmoe_routing_stats_t stats;
  if (!status && vmoe_session_routing_stats(session, 0, &stats, NULL) == 0)
    printf("kept %llu\n", (unsigned long long)stats.assignments_kept);
  if (status)
    fprintf(stderr, "%s: %s\n", vmoe_status_name(status), message.text);
  vmoe_session_destroy(session);
  vmoe_module_release(module);
  return status ? 1 : 0;
}
