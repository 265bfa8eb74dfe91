//===- CpuLoader.cpp - Load and check CPU shared objects ------------------===//

#include "CpuLoader.h"

#include "Diagnostics.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/syscall.h>
#endif
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace vmoe {
namespace cpu {

namespace {

bool equals(const char *a, size_t length, const char *b) {
  return strlen(b) == length && memcmp(a, b, length) == 0;
}

#if defined(__x86_64__)

enum Reg { EAX, EBX, ECX, EDX };
// OS state a feature needs enabled in XCR0 besides the cpuid bit.
enum State { None = 0, Avx = 1, Avx512 = 2, Amx = 4 };

struct X86Feature {
  const char *name;
  uint32_t leaf;
  uint32_t subleaf;
  Reg reg;
  uint32_t bit;
  int state;
};

// LLVM feature names. Baseline x86-64 features (sse, sse2, ...) are true on
// every x86-64 CPU and listed with leaf 0.
const X86Feature kX86Features[] = {
    {"64bit", 0, 0, EAX, 0, None},
    {"x87", 0, 0, EAX, 0, None},
    {"cmov", 0, 0, EAX, 0, None},
    {"cx8", 0, 0, EAX, 0, None},
    {"fxsr", 0, 0, EAX, 0, None},
    {"mmx", 0, 0, EAX, 0, None},
    {"sse", 0, 0, EAX, 0, None},
    {"sse2", 0, 0, EAX, 0, None},
    {"sse3", 1, 0, ECX, 0, None},
    {"pclmul", 1, 0, ECX, 1, None},
    {"ssse3", 1, 0, ECX, 9, None},
    {"fma", 1, 0, ECX, 12, Avx},
    {"cx16", 1, 0, ECX, 13, None},
    {"sse4.1", 1, 0, ECX, 19, None},
    {"sse4.2", 1, 0, ECX, 20, None},
    {"crc32", 1, 0, ECX, 20, None},
    {"movbe", 1, 0, ECX, 22, None},
    {"popcnt", 1, 0, ECX, 23, None},
    {"aes", 1, 0, ECX, 25, None},
    {"xsave", 1, 0, ECX, 26, None},
    {"avx", 1, 0, ECX, 28, Avx},
    {"f16c", 1, 0, ECX, 29, Avx},
    {"rdrnd", 1, 0, ECX, 30, None},
    {"fsgsbase", 7, 0, EBX, 0, None},
    {"bmi", 7, 0, EBX, 3, None},
    {"avx2", 7, 0, EBX, 5, Avx},
    {"bmi2", 7, 0, EBX, 8, None},
    {"invpcid", 7, 0, EBX, 10, None},
    {"rtm", 7, 0, EBX, 11, None},
    {"avx512f", 7, 0, EBX, 16, Avx | Avx512},
    {"avx512dq", 7, 0, EBX, 17, Avx | Avx512},
    {"rdseed", 7, 0, EBX, 18, None},
    {"adx", 7, 0, EBX, 19, None},
    {"avx512ifma", 7, 0, EBX, 21, Avx | Avx512},
    {"clflushopt", 7, 0, EBX, 23, None},
    {"clwb", 7, 0, EBX, 24, None},
    {"avx512cd", 7, 0, EBX, 28, Avx | Avx512},
    {"sha", 7, 0, EBX, 29, None},
    {"avx512bw", 7, 0, EBX, 30, Avx | Avx512},
    {"avx512vl", 7, 0, EBX, 31, Avx | Avx512},
    {"avx512vbmi", 7, 0, ECX, 1, Avx | Avx512},
    {"pku", 7, 0, ECX, 3, None},
    {"avx512vbmi2", 7, 0, ECX, 6, Avx | Avx512},
    {"gfni", 7, 0, ECX, 8, None},
    {"vaes", 7, 0, ECX, 9, Avx},
    {"vpclmulqdq", 7, 0, ECX, 10, Avx},
    {"avx512vnni", 7, 0, ECX, 11, Avx | Avx512},
    {"avx512bitalg", 7, 0, ECX, 12, Avx | Avx512},
    {"avx512vpopcntdq", 7, 0, ECX, 14, Avx | Avx512},
    {"rdpid", 7, 0, ECX, 22, None},
    {"cldemote", 7, 0, ECX, 25, None},
    {"movdiri", 7, 0, ECX, 27, None},
    {"movdir64b", 7, 0, ECX, 28, None},
    {"avx512vp2intersect", 7, 0, EDX, 8, Avx | Avx512},
    {"serialize", 7, 0, EDX, 14, None},
    {"tsxldtrk", 7, 0, EDX, 16, None},
    {"amx-bf16", 7, 0, EDX, 22, Amx},
    {"avx512fp16", 7, 0, EDX, 23, Avx | Avx512},
    {"amx-tile", 7, 0, EDX, 24, Amx},
    {"amx-int8", 7, 0, EDX, 25, Amx},
    {"avxvnni", 7, 1, EAX, 4, Avx},
    {"avx512bf16", 7, 1, EAX, 5, Avx | Avx512},
    {"amx-fp16", 7, 1, EAX, 21, Amx},
    {"avxifma", 7, 1, EAX, 23, Avx},
    {"prefetchi", 7, 1, EDX, 14, None},
    {"xsaveopt", 0xd, 1, EAX, 0, None},
    {"xsavec", 0xd, 1, EAX, 1, None},
    {"xsaves", 0xd, 1, EAX, 3, None},
    {"sahf", 0x80000001u, 0, ECX, 0, None},
    {"lzcnt", 0x80000001u, 0, ECX, 5, None},
    {"sse4a", 0x80000001u, 0, ECX, 6, None},
    {"prfchw", 0x80000001u, 0, ECX, 8, None},
    {"fma4", 0x80000001u, 0, ECX, 16, Avx},
};

bool cpuidBit(uint32_t leaf, uint32_t subleaf, Reg reg, uint32_t bit) {
  uint32_t regs[4] = {0, 0, 0, 0};
  uint32_t maxLeaf = __get_cpuid_max(leaf & 0x80000000u, nullptr);
  if (maxLeaf < leaf)
    return false;
  __cpuid_count(leaf, subleaf, regs[0], regs[1], regs[2], regs[3]);
  return (regs[reg] >> bit) & 1;
}

/// Whether the OS saves the register state of `state` (XCR0 via xgetbv).
bool osSupports(int state) {
  if (state == None)
    return true;
  if (!cpuidBit(1, 0, ECX, 27)) // OSXSAVE
    return false;
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  uint64_t xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
  if ((state & Avx) && (xcr0 & 0x6) != 0x6)
    return false;
  if ((state & Avx512) && (xcr0 & 0xe0) != 0xe0)
    return false;
  if (state & Amx) {
    if ((xcr0 & 0x60000) != 0x60000)
      return false;
#if defined(__linux__) && defined(SYS_arch_prctl)
    // Linux hands AMX tile data only to processes that ask for it; without
    // the request the first tile instruction raises SIGILL.
    const int kArchReqXcompPerm = 0x1023, kXFeatureXTileData = 18;
    if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXFeatureXTileData) != 0)
      return false;
#endif
  }
  return true;
}

/// The AVX10 version (0: none): CPUID.(7,1):EDX[19], then leaf 0x24's
/// EBX[7:0]. LLVM names a version "avx10.N" (512-bit vectors included).
uint32_t avx10Version() {
  if (!cpuidBit(7, 1, EDX, 19) || __get_cpuid_max(0, nullptr) < 0x24)
    return 0;
  uint32_t regs[4];
  __cpuid_count(0x24, 0, regs[0], regs[1], regs[2], regs[3]);
  return regs[EBX] & 0xff;
}

#endif // __x86_64__

} // namespace

const char *hostArchitecture() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64";
#else
  return "unknown";
#endif
}

bool hostHasFeature(const char *feature, size_t length, bool *known) {
  *known = false;
#if defined(__x86_64__)
  for (uint32_t version = 1; version <= 2; ++version) {
    char name[16];
    snprintf(name, sizeof(name), "avx10.%u", version);
    if (!equals(feature, length, name))
      continue;
    *known = true;
    return avx10Version() >= version && osSupports(Avx | Avx512);
  }
  for (const X86Feature &f : kX86Features) {
    if (!equals(feature, length, f.name))
      continue;
    *known = true;
    if (f.leaf == 0)
      return true;
    return cpuidBit(f.leaf, f.subleaf, f.reg, f.bit) && osSupports(f.state);
  }
#elif defined(__aarch64__) && defined(__linux__)
  struct ArmFeature {
    const char *name;
    int hwcap; // 1 or 2
    unsigned long bit;
  };
  static const ArmFeature features[] = {
      {"neon", 0, 0},
      {"fp-armv8", 0, 0},
      {"crc", 1, HWCAP_CRC32},
      {"aes", 1, HWCAP_AES},
      {"sha2", 1, HWCAP_SHA2},
      {"lse", 1, HWCAP_ATOMICS},
      {"rdm", 1, HWCAP_ASIMDRDM},
      {"fullfp16", 1, HWCAP_ASIMDHP},
      {"dotprod", 1, HWCAP_ASIMDDP},
      {"sve", 1, HWCAP_SVE},
#ifdef HWCAP2_SVE2
      {"sve2", 2, HWCAP2_SVE2},
#endif
#ifdef HWCAP2_BF16
      {"bf16", 2, HWCAP2_BF16},
#endif
#ifdef HWCAP2_I8MM
      {"i8mm", 2, HWCAP2_I8MM},
#endif
  };
  for (const ArmFeature &f : features) {
    if (!equals(feature, length, f.name))
      continue;
    *known = true;
    if (f.hwcap == 0)
      return true;
    unsigned long caps = getauxval(f.hwcap == 1 ? AT_HWCAP : AT_HWCAP2);
    return (caps & f.bit) != 0;
  }
#else
  (void)feature;
  (void)length;
#endif
  return false;
}

vmoe_status_t checkTarget(uint32_t index, const char *triple,
                          const char *features, vmoe_message_t *message) {
  const char *dash = strchr(triple, '-');
  size_t archLength =
      dash ? static_cast<size_t>(dash - triple) : strlen(triple);
  const char *host = hostArchitecture();
  bool archMatches = equals(triple, archLength, host);
  if (!archMatches && strcmp(host, "x86_64") == 0)
    archMatches = equals(triple, archLength, "amd64");
  if (!archMatches && strcmp(host, "aarch64") == 0)
    archMatches = equals(triple, archLength, "arm64");
  if (!archMatches)
    return fail(message, VMOE_STATUS_UNSUPPORTED,
                "executable %u is compiled for '%.64s', but this host is %s",
                index, triple, host);
  for (const char *p = features; p && *p;) {
    const char *end = strchr(p, ',');
    size_t length = end ? static_cast<size_t>(end - p) : strlen(p);
    const char *name = p;
    size_t nameLength = length;
    p = end ? end + 1 : p + length;
    while (nameLength && *name == ' ')
      ++name, --nameLength;
    while (nameLength && name[nameLength - 1] == ' ')
      --nameLength;
    if (nameLength == 0 || *name == '-')
      continue; // a disabled feature asks nothing of the host
    if (*name == '+')
      ++name, --nameLength;
    bool known;
    bool present = hostHasFeature(name, nameLength, &known);
    if (!known)
      return fail(message, VMOE_STATUS_UNSUPPORTED,
                  "executable %u requires CPU feature '%.*s', which this "
                  "runtime cannot check on %s; refusing to run code that "
                  "might not execute",
                  index, static_cast<int>(nameLength > 64 ? 64 : nameLength),
                  name, host);
    if (!present)
      return fail(message, VMOE_STATUS_UNSUPPORTED,
                  "executable %u requires CPU feature '%.*s', which this "
                  "host lacks; compile the module for this CPU (or an older "
                  "one)",
                  index, static_cast<int>(nameLength > 64 ? 64 : nameLength),
                  name);
  }
  return VMOE_STATUS_OK;
}

/// dlopen maps what the program headers describe: a table or a segment that
/// lies past the end of the image (an executable cut short by a compiler
/// bug) would fault inside the loader (SIGBUS) instead of failing.
static vmoe_status_t checkProgramHeaders(uint32_t index, const Elf64_Ehdr &ehdr,
                                         const uint8_t *data, uint64_t size,
                                         vmoe_message_t *message) {
  uint64_t tableBytes = uint64_t(ehdr.e_phnum) * sizeof(Elf64_Phdr);
  if (ehdr.e_phentsize != sizeof(Elf64_Phdr) || ehdr.e_phnum == 0 ||
      ehdr.e_phoff > size || tableBytes > size - ehdr.e_phoff)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "executable %u has a program header table (offset %llu, %u "
                "entries of %u bytes) outside its %llu bytes",
                index, static_cast<unsigned long long>(ehdr.e_phoff),
                ehdr.e_phnum, ehdr.e_phentsize,
                static_cast<unsigned long long>(size));
  for (unsigned i = 0; i < ehdr.e_phnum; ++i) {
    Elf64_Phdr ph;
    memcpy(&ph, data + ehdr.e_phoff + i * sizeof(Elf64_Phdr), sizeof(ph));
    if (ph.p_offset > size || ph.p_filesz > size - ph.p_offset)
      return fail(message, VMOE_STATUS_INVALID_MODULE,
                  "executable %u: program header %u covers file bytes [%llu, "
                  "+%llu), past its %llu bytes",
                  index, i, static_cast<unsigned long long>(ph.p_offset),
                  static_cast<unsigned long long>(ph.p_filesz),
                  static_cast<unsigned long long>(size));
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t checkElf(uint32_t index, const uint8_t *data, uint64_t size,
                       vmoe_message_t *message) {
  Elf64_Ehdr ehdr;
  if (size < sizeof(ehdr) || memcmp(data, ELFMAG, SELFMAG) != 0)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "executable %u is not an ELF shared object", index);
  memcpy(&ehdr, data, sizeof(ehdr));
  if (ehdr.e_ident[EI_CLASS] != ELFCLASS64 ||
      ehdr.e_ident[EI_DATA] != ELFDATA2LSB)
    return fail(message, VMOE_STATUS_UNSUPPORTED,
                "executable %u is not a 64-bit little-endian ELF object",
                index);
  if (ehdr.e_type != ET_DYN)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "executable %u is an ELF object of type %u, not a shared "
                "object",
                index, ehdr.e_type);
#if defined(__x86_64__)
  const unsigned hostMachine = EM_X86_64;
#elif defined(__aarch64__)
  const unsigned hostMachine = EM_AARCH64;
#else
  const unsigned hostMachine = ehdr.e_machine;
#endif
  if (ehdr.e_machine != hostMachine)
    return fail(message, VMOE_STATUS_UNSUPPORTED,
                "executable %u is ELF machine %u, but this host (%s) needs %u",
                index, ehdr.e_machine, hostArchitecture(), hostMachine);
  return checkProgramHeaders(index, ehdr, data, size, message);
}

namespace {

bool writeAll(int fd, const uint8_t *data, uint64_t size) {
  while (size) {
    size_t chunk = size > (1u << 30) ? (1u << 30) : static_cast<size_t>(size);
    ssize_t n = write(fd, data, chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    data += n;
    size -= static_cast<uint64_t>(n);
  }
  return true;
}

/// Whether `path` names an object this process has loaded already. glibc's
/// dlopen returns such an object instead of reading the file (it matches by
/// name, and by a DT_SONAME equal to the name), so loading a second module
/// under a reused name would run the first module's code.
bool nameInUse(const char *path) {
  void *existing = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  if (!existing)
    return false;
  dlclose(existing); // drops only the reference RTLD_NOLOAD took
  return true;
}

vmoe_status_t openLoaded(uint32_t index, const char *path, void **handle,
                         vmoe_message_t *message) {
  // RTLD_NOW: unresolved symbols fail here, not in the middle of a run.
  // RTLD_LOCAL: two modules may export the same kernel names.
  *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!*handle) {
    const char *error = dlerror();
    return fail(message, VMOE_STATUS_UNSUPPORTED,
                "executable %u: dlopen failed: %s", index,
                error ? error : "unknown error");
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t loadWithMemFd(uint32_t index, const uint8_t *data, uint64_t size,
                            void **handle, vmoe_message_t *message,
                            bool *unavailable) {
  *unavailable = true;
#if defined(__linux__) && defined(SYS_memfd_create)
  const unsigned kMfdCloexec = 1;
  int fd = static_cast<int>(
      syscall(SYS_memfd_create, "vmoe-executable", kMfdCloexec));
  if (fd < 0)
    return VMOE_STATUS_UNSUPPORTED;
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  if (access(path, R_OK) != 0) { // no /proc: fall back to a file
    close(fd);
    return VMOE_STATUS_UNSUPPORTED;
  }
  *unavailable = false;
  // The descriptor is closed once dlopen has mapped the object, so a later
  // load may get the same number, whose name an earlier module's object
  // still holds: move to a number whose name no loaded object has. While
  // this load holds the descriptor no other load can take its number.
  while (nameInUse(path)) {
    int next = fcntl(fd, F_DUPFD_CLOEXEC, fd + 1);
    int error = errno;
    close(fd);
    if (next < 0)
      return fail(message, VMOE_STATUS_IO_ERROR,
                  "executable %u: cannot duplicate the memfd: %s", index,
                  strerror(error));
    fd = next;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  }
  if (!writeAll(fd, data, size)) {
    int error = errno;
    close(fd);
    return fail(message, VMOE_STATUS_IO_ERROR,
                "executable %u: writing %llu bytes to a memfd failed: %s",
                index, static_cast<unsigned long long>(size), strerror(error));
  }
  vmoe_status_t status = openLoaded(index, path, handle, message);
  close(fd); // the mapping made by dlopen keeps the contents alive
  return status;
#else
  (void)index;
  (void)data;
  (void)size;
  (void)handle;
  (void)message;
  return VMOE_STATUS_UNSUPPORTED;
#endif
}

vmoe_status_t loadWithTempFile(uint32_t index, const uint8_t *data,
                               uint64_t size, void **handle,
                               vmoe_message_t *message) {
  const char *dir = getenv("TMPDIR");
  if (!dir || !*dir)
    dir = "/tmp";
  char path[4096];
  int fd = -1;
  // mkstemp may hand out the name of an earlier, unlinked executable whose
  // object is still loaded under it; dlopen would return that object.
  for (int attempt = 0; fd < 0; ++attempt) {
    if (snprintf(path, sizeof(path), "%s/vmoe-executable-XXXXXX", dir) >=
        static_cast<int>(sizeof(path)))
      return fail(message, VMOE_STATUS_IO_ERROR,
                  "executable %u: TMPDIR path is too long", index);
    fd = mkstemp(path); // O_EXCL, mode 0600
    if (fd < 0)
      return fail(message, VMOE_STATUS_IO_ERROR,
                  "executable %u: cannot create a temporary file in "
                  "'%.256s': %s",
                  index, dir, strerror(errno));
    if (nameInUse(path)) {
      close(fd);
      unlink(path);
      fd = -1;
      if (attempt == 100)
        return fail(message, VMOE_STATUS_IO_ERROR,
                    "executable %u: no unused temporary file name in "
                    "'%.256s'",
                    index, dir);
    }
  }
  bool written = writeAll(fd, data, size);
  int error = errno;
  close(fd);
  vmoe_status_t status =
      written ? openLoaded(index, path, handle, message)
              : fail(message, VMOE_STATUS_IO_ERROR,
                     "executable %u: writing '%.256s' failed: %s", index, path,
                     strerror(error));
  unlink(path); // the loaded mapping outlives the name
  return status;
}

} // namespace

vmoe_status_t loadSharedObject(uint32_t index, const uint8_t *data,
                               uint64_t size, LoadMethod method, void **handle,
                               vmoe_message_t *message) {
  *handle = nullptr;
  if (vmoe_status_t status = checkElf(index, data, size, message))
    return status;
  if (method != LoadMethod::TempFile) {
    bool unavailable;
    vmoe_status_t status =
        loadWithMemFd(index, data, size, handle, message, &unavailable);
    if (!unavailable || method == LoadMethod::MemFd) {
      if (unavailable)
        return fail(message, VMOE_STATUS_UNSUPPORTED,
                    "executable %u: memfd_create is unavailable", index);
      return status;
    }
  }
  return loadWithTempFile(index, data, size, handle, message);
}

} // namespace cpu
} // namespace vmoe
