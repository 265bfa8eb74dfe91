//===- fail.cpp - functions over 10 lines (check_source_sizes.py) ---------===//
//
// Each function here is 11 or more lines long, counted from the first line
// of its definition to its closing brace: test_check_source_sizes.py
// expects exactly these in the report.
//
//===----------------------------------------------------------------------===//

#include <vector>

namespace a {
namespace b {

// A signature on several lines, a lambda inside.
static std::vector<int>
spreadOut(int first,
          int second) {
  auto add = [&](int x) {
    return x + first;
  };
  std::vector<int> out;
  out.push_back(add(second));
  out.push_back(add(first));
  return out;
}

struct Holder {
  // A member function defined in the class body, at column 2.
  int sum(const std::vector<int> &values) const {
    int total = 0;
    for (int v : values) {
      if (v > 0) {
        total += v;
      }
    }
    // Local class: part of the function.
    struct Local {
      int x;
    };
    return total;
  }
  int short_() const { return 0; }
};

template <typename T>
T guarded(T value)
try {
  return value;
} catch (...) {
  return T();
}

// A constructor with braced member initializers before its body.
class Counter {
public:
  Counter()
      : counts{0, 0},
        total{0} {
    counts.push_back(1);
    counts.push_back(2);
    counts.push_back(3);
    counts.push_back(4);
    counts.push_back(5);
    counts.push_back(6);
    total = 10;
  }

private:
  std::vector<int> counts;
  int total;
};

// A lambda at namespace scope is measured like a function.
auto kLong = [](int x) {
  int y = x;
  y += 1;
  y += 2;
  y += 3;
  y += 4;
  y += 5;
  y += 6;
  y += 7;
  return y;
};

} // namespace b
} // namespace a

#ifdef A_OTHER_PLATFORM
int platform() { return 1; }
#else
// Only in the #else branch: measured too.
int platform() {
  int v = 0;
  v += 1;
  v += 2;
  v += 3;
  v += 4;
  v += 5;
  v += 6;
  v += 7;
  return v;
}
#endif
