//===- pass.cpp - no function over 10 lines (check_source_sizes.py) -------===//
//
// Blocks longer than the test's limit of 10 lines that are not functions,
// and functions the scanner must find and measure (test_check_source_sizes.py
// lists them with their lines): braces in comments { and strings, tables,
// enums, classes, member initializers, #else branches.
//
//===----------------------------------------------------------------------===//

#include <functional>
#include <string>
#include <vector>

namespace outer {
namespace {

enum class Colour : int {
  Red,
  Green,
  Blue,
  Cyan,
  Magenta,
  Yellow,
  Black,
  White,
  Grey,
};

const struct Entry {
  const char *name;
  int value;
} kTable[] = {
    {"{", 1},
    {"}", 2},
    {"{{", 3},
    {"a", 4},
    {"b", 5},
    {"c", 6},
    {"d", 7},
    {"e", 8},
};

std::vector<std::vector<int>> kNested{
    {1, 2},
    {3, 4},
    {5, 6},
    {7, 8},
    {9, 10},
    {11, 12},
    {13, 14},
    {15, 16},
};

} // namespace

class Widget : public std::function<void(int)> {
public:
  Widget(int a, std::string name)
      : a{a}, name(std::move(name)),
        values{1, 2, 3} {
    char open = '{';
    (void)open;
  }
  int get() const { return a + 1'000; }
  Widget &operator=(const Widget &other) {
    a = other.a;
    return *this;
  }
  bool operator<(const Widget &other) const { return a < other.a; }

private:
  int a;
  std::string name;
  std::vector<int> values{4, 5, 6};
  std::function<void()> callback = [] {};
};

template <typename T, typename = std::enable_if_t<sizeof(T) == 4>>
T twice(T value,
        std::vector<int> defaults = {1, 2}) {
  return value + value;
}

#if defined(OUTER_WIDE)
int pick(long value) {
#else
int pick(int value) {
#endif
  return value > 0 ? 1 : 0;
}

const char *kText = R"({ "not": "a brace" })"; // {

} // namespace outer
