//===- Diagnostics.cpp - Status messages ----------------------------------===//

#include "Diagnostics.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace vmoe {

vmoe_status_t fail(vmoe_message_t *message, vmoe_status_t status,
                   const char *format, ...) {
  if (message) {
    va_list args;
    va_start(args, format);
    vsnprintf(message->text, sizeof(message->text), format, args);
    va_end(args);
  }
  return status;
}

void prependMessage(vmoe_message_t *message, const char *format, ...) {
  if (!message)
    return;
  char prefix[256];
  va_list args;
  va_start(args, format);
  int length = vsnprintf(prefix, sizeof(prefix) - 2, format, args);
  va_end(args);
  if (length < 0)
    return;
  size_t head = strlen(prefix);
  prefix[head++] = ':';
  prefix[head++] = ' ';
  // Shift the old text right (truncating its end), then put the prefix in.
  char *text = message->text;
  const size_t capacity = sizeof(message->text);
  size_t old = strnlen(text, capacity - 1);
  size_t kept = old < capacity - 1 - head ? old : capacity - 1 - head;
  memmove(text + head, text, kept);
  text[head + kept] = 0;
  memcpy(text, prefix, head);
}

DoubleText formatDouble(double value) {
  DoubleText result;
  for (int precision = 6; precision <= 17; ++precision) {
    snprintf(result.text, sizeof(result.text), "%.*g", precision, value);
    if (strtod(result.text, nullptr) == value)
      return result;
  }
  return result; // NaN never compares equal; "%.17g" printed it anyway.
}

ShapeText formatShape(const int64_t *dims, uint32_t rank) {
  ShapeText result;
  size_t used = 0;
  size_t room = sizeof(result.text);
  used += snprintf(result.text, room, "[");
  for (uint32_t i = 0; i < rank; ++i) {
    if (used + 28 >= room) {
      snprintf(result.text + used, room - used, "...]");
      return result;
    }
    used += snprintf(result.text + used, room - used, "%s%lld", i ? "," : "",
                     static_cast<long long>(dims[i]));
  }
  snprintf(result.text + used, room - used, "]");
  return result;
}

} // namespace vmoe
