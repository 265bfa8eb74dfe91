//===- Module.cpp - A loaded, verified module -----------------------------===//

#include "Module.h"

#include "CpuLoader.h"
#include "Diagnostics.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <new>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vmoe {

Module::~Module() {
  for (void *handle : cpuHandles)
    if (handle)
      dlclose(handle);
  switch (storage) {
  case Storage::Mapped:
    munmap(const_cast<uint8_t *>(data), size);
    break;
  case Storage::Borrowed:
    break;
  }
  pthread_mutex_destroy(&cpuMutex);
}

void Module::release() {
  if (refCount.fetch_sub(1, std::memory_order_acq_rel) == 1)
    delete this;
}

vmoe_status_t Module::init(const uint8_t *bytes, uint64_t length, Storage how,
                           const vmoe_module_load_options_t &options,
                           vmoe_message_t *message) {
  data = bytes;
  size = length;
  storage = how;
  VerifyOptions verify;
  verify.verifyWeights = options.verify_weights == VMOE_VERIFY_WEIGHTS_ALL;
  verify.keys = options.trusted_keys;
  verify.keyCount = options.trusted_key_count;
  vmoe_status_t status =
      verifyModule(bytes, length, verify, &verified, message);
  checkedSignature = !status && verify.keyCount;
  checkedWeights = !status && verify.verifyWeights;
  return status;
}

/// Takes ownership of `bytes` (released per `how` on failure too).
vmoe_status_t Module::finishLoad(const uint8_t *bytes, uint64_t length,
                                 Storage how,
                                 const vmoe_module_load_options_t &options,
                                 Module **out, vmoe_message_t *message) {
  Module *module = new (std::nothrow) Module();
  if (!module) {
    if (how == Storage::Mapped)
      munmap(const_cast<uint8_t *>(bytes), static_cast<size_t>(length));

    return fail(message, VMOE_STATUS_OUT_OF_MEMORY, "out of memory");
  }
  vmoe_status_t status = module->init(bytes, length, how, options, message);
  if (status) {
    module->release();
    return status;
  }
  *out = module;
  return VMOE_STATUS_OK;
}

namespace {

/// Private pages for a copy of a module (page-aligned, so every segment
/// alignment holds). sealCopy makes them read-only once filled: a kernel
/// cannot write through an in-place constant of a copy any more than
/// through one of a mapped file.
uint8_t *mapCopy(uint64_t length) {
  void *pages = mmap(nullptr, static_cast<size_t>(length),
                     PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return pages == MAP_FAILED ? nullptr : static_cast<uint8_t *>(pages);
}

vmoe_status_t sealCopy(uint8_t *bytes, uint64_t length,
                       vmoe_message_t *message) {
  if (mprotect(bytes, static_cast<size_t>(length), PROT_READ) == 0)
    return VMOE_STATUS_OK;
  int error = errno;
  munmap(bytes, static_cast<size_t>(length));
  return fail(message, VMOE_STATUS_INTERNAL,
              "cannot make the module copy read-only: %s", strerror(error));
}

/// Reads the `length` bytes of `fd` into read-only pages of our own.
vmoe_status_t readWhole(int fd, const char *path, uint64_t length,
                        uint8_t **out, vmoe_message_t *message) {
  uint8_t *bytes = mapCopy(length);
  if (!bytes)
    return fail(message, VMOE_STATUS_OUT_OF_MEMORY,
                "cannot allocate %llu bytes to copy '%.512s'",
                static_cast<unsigned long long>(length), path);
  uint64_t done = 0;
  while (done < length) {
    ssize_t n = pread(fd, bytes + done, static_cast<size_t>(length - done),
                      static_cast<off_t>(done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int error = n < 0 ? errno : 0;
      munmap(bytes, static_cast<size_t>(length));
      return fail(message, VMOE_STATUS_IO_ERROR, "cannot read '%.512s': %s",
                  path, error ? strerror(error) : "the file shrank while read");
    }
    done += static_cast<uint64_t>(n);
  }
  if (vmoe_status_t status = sealCopy(bytes, length, message))
    return status;
  *out = bytes;
  return VMOE_STATUS_OK;
}

} // namespace

vmoe_status_t Module::loadFile(const char *path,
                               const vmoe_module_load_options_t &options,
                               Module **out, vmoe_message_t *message) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(message, VMOE_STATUS_IO_ERROR, "cannot open '%.512s': %s", path,
                strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int error = errno;
    close(fd);
    return fail(message, VMOE_STATUS_IO_ERROR, "cannot stat '%.512s': %s", path,
                strerror(error));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return fail(message, VMOE_STATUS_IO_ERROR, "'%.512s' is not a file", path);
  }
  uint64_t length = static_cast<uint64_t>(st.st_size);
  if (length < VMOE_MODULE_HEADER_SIZE) {
    close(fd);
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "module is truncated: %llu bytes, smaller than the %u-byte "
                "header",
                static_cast<unsigned long long>(length),
                VMOE_MODULE_HEADER_SIZE);
  }
  if (length > SIZE_MAX) {
    close(fd);
    return fail(message, VMOE_STATUS_UNSUPPORTED,
                "'%.512s' is too large to map on this host", path);
  }
  if (options.copy) {
    uint8_t *bytes = nullptr;
    vmoe_status_t status = readWhole(fd, path, length, &bytes, message);
    close(fd);
    if (status)
      return status;
    return finishLoad(bytes, length, Storage::Mapped, options, out, message);
  }
  // Read-only and private: kernels cannot modify the file through in-place
  // constants, and pages are shared between processes. When the load reads
  // every byte anyway (weights checked, or a signature), the pages are
  // mapped in one go instead of one fault at a time.
  int flags = MAP_PRIVATE;
  if (options.verify_weights == VMOE_VERIFY_WEIGHTS_ALL ||
      options.trusted_key_count)
    flags |= MAP_POPULATE;
  void *mapped =
      mmap(nullptr, static_cast<size_t>(length), PROT_READ, flags, fd, 0);
  int error = errno;
  close(fd);
  if (mapped == MAP_FAILED)
    return fail(message, VMOE_STATUS_IO_ERROR, "cannot map '%.512s': %s", path,
                strerror(error));
  return finishLoad(static_cast<const uint8_t *>(mapped), length,
                    Storage::Mapped, options, out, message);
}

vmoe_status_t Module::loadMemory(const void *bytes, size_t length,
                                 vmoe_memory_mode_t mode,
                                 const vmoe_module_load_options_t &options,
                                 Module **out, vmoe_message_t *message) {
  if (mode != VMOE_MEMORY_COPY && mode != VMOE_MEMORY_BORROW)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT, "unknown memory mode %d",
                static_cast<int>(mode));
  if (mode == VMOE_MEMORY_BORROW && options.copy)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "load option copy contradicts VMOE_MEMORY_BORROW");
  if (mode == VMOE_MEMORY_BORROW &&
      reinterpret_cast<uintptr_t>(bytes) % VMOE_SEGMENT_BASE_ALIGNMENT)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "a borrowed module buffer must be %u-byte aligned (got "
                "address %p); align it or use VMOE_MEMORY_COPY",
                VMOE_SEGMENT_BASE_ALIGNMENT, bytes);
  if (mode == VMOE_MEMORY_BORROW)
    return finishLoad(static_cast<const uint8_t *>(bytes), length,
                      Storage::Borrowed, options, out, message);
  if (length < VMOE_MODULE_HEADER_SIZE)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "module is truncated: %zu bytes, smaller than the %u-byte "
                "header",
                length, VMOE_MODULE_HEADER_SIZE);
  uint8_t *copy = mapCopy(length);
  if (!copy)
    return fail(message, VMOE_STATUS_OUT_OF_MEMORY,
                "cannot allocate %zu bytes for the module copy", length);
  memcpy(copy, bytes, length);
  if (vmoe_status_t status = sealCopy(copy, length, message))
    return status;
  return finishLoad(copy, length, Storage::Mapped, options, out, message);
}

vmoe_status_t Module::prepareCpu(vmoe_message_t *message) {
  pthread_mutex_lock(&cpuMutex);
  if (cpuReady) {
    pthread_mutex_unlock(&cpuMutex);
    return VMOE_STATUS_OK;
  }
  const fb::Module &m = root();
  uint32_t executableCount = m.executables() ? m.executables()->size() : 0;
  uint32_t kernelCount = m.kernels() ? m.kernels()->size() : 0;
  std::vector<void *> handles(executableCount, nullptr);
  std::vector<vmoe_kernel_fn_v0_t> kernels(kernelCount, nullptr);
  vmoe_status_t status = VMOE_STATUS_OK;
  for (uint32_t k = 0; k < kernelCount && !status; ++k) {
    const fb::Kernel *kernel = m.kernels()->Get(k);
    uint32_t x = kernel->executable();
    const fb::Executable *executable = m.executables()->Get(x);
    if (executable->format() != fb::ExecutableFormat::CpuSharedObject) {
      status = fail(message, VMOE_STATUS_UNSUPPORTED,
                    "kernel %u ('%.64s') is in executable %u, which is not a "
                    "CPU shared object; this module cannot run on the CPU",
                    k, kernel->name() ? kernel->name()->c_str() : "", x);
      break;
    }
    if (!handles[x]) {
      const fb::CpuExecutable *cpu = executable->cpu();
      status = cpu::checkTarget(
          x, cpu->target_triple()->c_str(),
          cpu->cpu_features() ? cpu->cpu_features()->c_str() : "", message);
      if (!status)
        status = cpu::loadSharedObject(
            x, segmentData(cpu->segment()), segmentLength(cpu->segment()),
            cpu::LoadMethod::Auto, &handles[x], message);
      if (status)
        break;
    }
    void *symbol = dlsym(handles[x], kernel->entry()->c_str());
    if (!symbol)
      status = fail(message, VMOE_STATUS_INVALID_MODULE,
                    "kernel %u ('%.64s'): entry symbol '%.128s' not found in "
                    "executable %u",
                    k, kernel->name() ? kernel->name()->c_str() : "",
                    kernel->entry()->c_str(), x);
    kernels[k] = reinterpret_cast<vmoe_kernel_fn_v0_t>(symbol);
  }
  if (status) {
    for (void *handle : handles)
      if (handle)
        dlclose(handle);
  } else {
    cpuHandles.swap(handles);
    cpuKernels.swap(kernels);
    cpuReady = true;
  }
  pthread_mutex_unlock(&cpuMutex);
  return status;
}

} // namespace vmoe
