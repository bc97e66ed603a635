// The CUDA emulator's stand-in for CUB's DeviceRadixSort::SortPairs (see msemu.h): a stable
// sort by the key bits [begin_bit, end_bit), with CUB's two-call temporary-storage protocol.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "../../msemu.h"

namespace cub {

struct DeviceRadixSort {
  template <typename K, typename V>
  static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const K* keys_in, K* keys_out,
                               const V* vals_in, V* vals_out, int n, int begin_bit = 0,
                               int end_bit = sizeof(K) * 8, cudaStream_t s = nullptr) {
    const size_t need = 512 + static_cast<size_t>(n) * 8;  // CUB needs some; so do we
    if (temp == nullptr) {
      temp_bytes = need;
      return cudaSuccess;
    }
    if (temp_bytes < need || n < 0 || !msemu::IsDeviceRange(temp, need) ||
        !msemu::IsDeviceRange(keys_in, n * sizeof(K)) ||
        !msemu::IsDeviceRange(keys_out, n * sizeof(K)) ||
        !msemu::IsDeviceRange(vals_in, n * sizeof(V)) ||
        !msemu::IsDeviceRange(vals_out, n * sizeof(V)))
      return msemu::FailCall(cudaErrorInvalidValue, "cub::DeviceRadixSort::SortPairs");
    msemu::EnqueueWork(s, [=] {
      const int bits = end_bit - begin_bit;
      const uint64_t ones = bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
      const K mask = static_cast<K>(ones << begin_bit);
      std::vector<int> order(n);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int a, int b) { return (keys_in[a] & mask) < (keys_in[b] & mask); });
      std::vector<K> k(n);
      std::vector<V> v(n);
      for (int i = 0; i < n; i++) k[i] = keys_in[order[i]], v[i] = vals_in[order[i]];
      std::copy(k.begin(), k.end(), keys_out);
      std::copy(v.begin(), v.end(), vals_out);
    });
    return cudaSuccess;
  }
};

}  // namespace cub
