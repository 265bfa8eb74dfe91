//===- ReplayMain.cpp - Run a fuzz target over files, without libFuzzer --===//
//
// Linked with a fuzz target's LLVMFuzzerTestOneInput, this replays every file
// given (directories are read one level deep): the regression test for the
// inputs fuzzing found, in any build and with any compiler. Exits non-zero
// when an argument cannot be read; a finding crashes or trips a sanitizer.
//
//===----------------------------------------------------------------------===//

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

namespace {

bool replayFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fprintf(stderr, "error: cannot read '%s'\n", path.c_str());
    return false;
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  // A copy of exactly `size` bytes, so that ASan sees reads past the end.
  uint8_t *copy = new uint8_t[bytes.size() ? bytes.size() : 1];
  std::copy(bytes.begin(), bytes.end(), copy);
  LLVMFuzzerTestOneInput(copy, bytes.size());
  delete[] copy;
  return true;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
    return 2;
  }
  size_t count = 0;
  for (int i = 1; i < argc; ++i) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "error: cannot read '%s'\n", argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (!replayFile(argv[i]))
        return 1;
      ++count;
      continue;
    }
    DIR *dir = opendir(argv[i]);
    if (!dir) {
      fprintf(stderr, "error: cannot read directory '%s'\n", argv[i]);
      return 1;
    }
    std::vector<std::string> names;
    while (dirent *entry = readdir(dir))
      if (entry->d_name[0] != '.')
        names.push_back(entry->d_name);
    closedir(dir);
    std::sort(names.begin(), names.end());
    for (const std::string &name : names) {
      if (!replayFile(std::string(argv[i]) + "/" + name))
        return 1;
      ++count;
    }
  }
  printf("replayed %zu inputs\n", count);
  return 0;
}
