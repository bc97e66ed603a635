// Checks FastDiv (csrc/kernels/fastdiv.h) against '/' and '%': every divisor up to 4096 and
// powers of two and their neighbours up to 2^31, each against dividends next to multiples
// of the divisor, near 2^31 and random ones. Prints "ok <checks>" or the first mismatch.
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/fastdiv.h"

int main() {
  using minisinga::FastDiv;
  std::vector<uint32_t> divisors;
  for (uint32_t d = 1; d <= 4096; d++) divisors.push_back(d);
  for (int e = 12; e <= 31; e++) {
    const uint64_t p = uint64_t{1} << e;
    for (int64_t k = -3; k <= 3; k++)
      if (p + k >= 1 && p + k <= (uint64_t{1} << 31)) divisors.push_back(uint32_t(p + k));
  }
  std::mt19937 rng(0);
  for (int i = 0; i < 2000; i++) divisors.push_back(1 + rng() % 0x7fffffffu);
  const uint32_t kMax = 0x7fffffffu;  // dividends are < 2^31
  uint64_t checks = 0;
  for (uint32_t d : divisors) {
    const FastDiv f(d);
    std::vector<uint32_t> ns = {0, 1, 2, kMax, kMax - 1, kMax - d + 1};
    for (uint64_t q : {uint64_t{1}, uint64_t{2}, uint64_t{kMax / d}, uint64_t{kMax / d / 2}})
      for (int64_t k = -1; k <= 1; k++) {
        const int64_t n = int64_t(q * d) + k;
        if (n >= 0 && n <= kMax) ns.push_back(uint32_t(n));
      }
    for (int i = 0; i < 200; i++) ns.push_back(rng() & kMax);
    for (uint32_t n : ns) {
      if (n > kMax) continue;
      checks++;
      if (f.Div(n) != n / d || f.Mod(n) != n % d) {
        std::printf("mismatch: %u / %u = %u (got %u), %% %u (got %u)\n", n, d, n / d, f.Div(n),
                    n % d, f.Mod(n));
        return 1;
      }
    }
  }
  std::printf("ok %llu\n", static_cast<unsigned long long>(checks));
  return 0;
}
