// CUDA reductions over (outer, r, inner), deterministic (fixed reduction trees, no atomics):
//   rows  (inner == 1, long r): one block per row, per-thread strided partials then a block tree;
//   cols  (otherwise): one thread per output column, a serial loop over r (coalesced over i).
// When there are too few outputs to fill the GPU, r is split into `parts` whose partial
// results (scratch from the pool) are combined in part order by a last kernel.
// Accumulators as on the CPU: double for float sums, int64 for int32 sums.
#include <cstdint>
#include <limits>

#include "core/dispatch.h"
#include "kernels/cuda/util.cuh"
#include "kernels/reduce.h"

namespace minisinga {
namespace kernels {
namespace cuda {

namespace {

using cudak::DCvt;
using cudak::IsNan;
using cudak::kThreads;

template <typename T>
struct RT {
  using Cmp = float;
  using Sum = double;
  static __device__ __forceinline__ float Val(T v) { return DCvt<T>::Load(v); }
  static __device__ __forceinline__ float Lowest() { return -cudak::Inff(); }
  static __device__ __forceinline__ float Highest() { return cudak::Inff(); }
};
template <>
struct RT<int32_t> {
  using Cmp = int32_t;
  using Sum = int64_t;
  static __device__ __forceinline__ int32_t Val(int32_t v) { return v; }
  static __device__ __forceinline__ int32_t Lowest() { return INT32_MIN; }
  static __device__ __forceinline__ int32_t Highest() { return INT32_MAX; }
};

// Each op: Acc, Init(), Step(acc, value, k), Combine(a, b) (associative and commutative).
template <typename T>
struct SumOp {
  using Acc = typename RT<T>::Sum;
  static __device__ __forceinline__ Acc Init() { return 0; }
  static __device__ __forceinline__ void Step(Acc& a, T v, int64_t) {
    a += static_cast<Acc>(RT<T>::Val(v));
  }
  static __device__ __forceinline__ Acc Combine(Acc a, Acc b) { return a + b; }
};

// Max (kMax) or min; a NaN anywhere gives NaN.
template <typename T, bool kMax>
struct ExtremeOp {
  using Acc = typename RT<T>::Cmp;
  static __device__ __forceinline__ Acc Better(Acc a, Acc v) {
    return ((kMax ? v > a : v < a) || IsNan(v)) ? v : a;
  }
  static __device__ __forceinline__ Acc Init() {
    return kMax ? RT<T>::Lowest() : RT<T>::Highest();
  }
  static __device__ __forceinline__ void Step(Acc& a, T v, int64_t) {
    a = Better(a, RT<T>::Val(v));
  }
  static __device__ __forceinline__ Acc Combine(Acc a, Acc b) { return Better(a, b); }
};

// Index of the first max/min; the first NaN wins over any number. Combine orders candidates
// by (NaN first, then better value, then smaller index), so any tree gives the CPU's answer.
template <typename T, bool kMax>
struct ArgOp {
  using C = typename RT<T>::Cmp;
  struct Acc {
    C v;
    int64_t k;
  };
  static __device__ __forceinline__ Acc Init() {
    return {kMax ? RT<T>::Lowest() : RT<T>::Highest(), std::numeric_limits<int64_t>::max()};
  }
  static __device__ __forceinline__ Acc Combine(Acc a, Acc b) {
    const bool an = IsNan(a.v), bn = IsNan(b.v);
    if (an || bn) {
      if (an && bn) return a.k <= b.k ? a : b;
      return an ? a : b;
    }
    if (a.v != b.v) return (kMax ? b.v > a.v : b.v < a.v) ? b : a;
    return a.k <= b.k ? a : b;
  }
  static __device__ __forceinline__ void Step(Acc& a, T v, int64_t k) {
    a = Combine(a, Acc{RT<T>::Val(v), k});
  }
};

template <typename Tout, typename V>
__device__ __forceinline__ Tout Put(V v) {
  if constexpr (std::is_same<Tout, int32_t>::value) {
    return static_cast<int32_t>(v);  // int32 sums wrap, like numpy's int32 arithmetic
  } else {
    return DCvt<Tout>::Store(static_cast<float>(v));
  }
}

// Stores: y[j] from the final accumulator.
template <typename Tout>
struct SumStore {
  Tout* y;
  bool mean;
  double inv;
  template <typename Acc>
  __device__ __forceinline__ void operator()(int64_t j, Acc a) const {
    y[j] = mean ? Put<Tout>(static_cast<double>(a) * inv) : Put<Tout>(a);
  }
};
template <typename Tout>
struct ValueStore {
  Tout* y;
  template <typename Acc>
  __device__ __forceinline__ void operator()(int64_t j, Acc a) const {
    y[j] = Put<Tout>(a);
  }
};
struct IndexStore {
  int32_t* y;
  template <typename Acc>
  __device__ __forceinline__ void operator()(int64_t j, Acc a) const {
    y[j] = static_cast<int32_t>(a.k);
  }
};

// Part p of `parts` of [0, r).
__device__ __forceinline__ void PartRange(int64_t r, int64_t p, int64_t parts, int64_t* k0,
                                          int64_t* k1) {
  *k0 = r * p / parts;
  *k1 = r * (p + 1) / parts;
}

// Rows: block (o, p) reduces x[o, k0:k1] (inner == 1).
template <typename Op, typename T, typename Store>
__global__ void RowsKernel(const T* x, int64_t outer, int64_t r, int64_t parts,
                           typename Op::Acc* partial, Store store) {
  using Acc = typename Op::Acc;
  __shared__ Acc smem[kThreads];
  const int64_t p = blockIdx.y;
  int64_t k0, k1;
  PartRange(r, p, parts, &k0, &k1);
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    Acc acc = Op::Init();
    const T* row = x + o * r;
    for (int64_t k = k0 + threadIdx.x; k < k1; k += kThreads) Op::Step(acc, row[k], k);
    acc = cudak::BlockReduce(acc, smem, [](Acc a, Acc b) { return Op::Combine(a, b); });
    if (threadIdx.x == 0) {
      if (parts == 1)
        store(o, acc);
      else
        partial[p * outer + o] = acc;
    }
    __syncthreads();  // smem is reused by the next row
  }
}

// Cols: thread (p, o, i) reduces x[o, k0:k1, i] serially.
template <typename Op, typename T, typename Store>
__global__ void ColsKernel(const T* x, int64_t outer, int64_t r, int64_t inner, int64_t parts,
                           typename Op::Acc* partial, Store store) {
  using Acc = typename Op::Acc;
  const int64_t nout = outer * inner;
  MS_CUDA_LOOP(t, parts * nout) {
    const int64_t p = t / nout, j = t % nout;
    const int64_t o = j / inner, i = j % inner;
    int64_t k0, k1;
    PartRange(r, p, parts, &k0, &k1);
    Acc acc = Op::Init();
    const T* col = x + o * r * inner + i;
    for (int64_t k = k0; k < k1; k++) Op::Step(acc, col[k * inner], k);
    if (parts == 1)
      store(j, acc);
    else
      partial[t] = acc;
  }
}

// Combines the parts of each output in part order.
template <typename Op, typename Store>
__global__ void CombineKernel(const typename Op::Acc* partial, int64_t nout, int64_t parts,
                              Store store) {
  MS_CUDA_LOOP(j, nout) {
    typename Op::Acc a = partial[j];
    for (int64_t p = 1; p < parts; p++) a = Op::Combine(a, partial[p * nout + j]);
    store(j, a);
  }
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename Op, typename T, typename Store>
void Run(Context* ctx, const T* x, int64_t outer, int64_t r, int64_t inner, Store store) {
  using Acc = typename Op::Acc;
  cudaStream_t s = cudak::Stream(ctx);
  const int64_t nout = outer * inner;
  if (nout == 0) return;
  const bool rows = inner == 1 && r >= 64;
  int64_t parts = 1;
  if (rows) {
    if (outer < 512) parts = std::min(CeilDiv(1024, outer), CeilDiv(r, 4096));
  } else if (nout < 65536 && r >= 64) {
    parts = std::min(CeilDiv(131072, nout), CeilDiv(r, 64));
  }
  parts = std::max<int64_t>(1, std::min<int64_t>(parts, 65535));
  cudak::Scratch scratch(ctx, parts > 1 ? sizeof(Acc) * parts * nout : 0);
  Acc* partial = scratch.as<Acc>();
  if (rows) {
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>(outer, 65535)),
                    static_cast<unsigned>(parts));
    RowsKernel<Op><<<grid, kThreads, 0, s>>>(x, outer, r, parts, partial, store);
    MS_CUDA_LAUNCH_CHECK("RowsKernel");
  } else {
    ColsKernel<Op><<<cudak::Blocks(parts * nout), kThreads, 0, s>>>(x, outer, r, inner, parts,
                                                                     partial, store);
    MS_CUDA_LAUNCH_CHECK("ColsKernel");
  }
  if (parts > 1) {
    CombineKernel<Op><<<cudak::Blocks(nout), kThreads, 0, s>>>(partial, nout, parts, store);
    MS_CUDA_LAUNCH_CHECK("CombineKernel");
  }
}

template <typename Tin, typename Tout>
void ReduceT(Context* ctx, ReduceOp op, const Tin* x, Tout* y, int64_t outer, int64_t r,
             int64_t inner) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kMean: {
      const bool mean = op == ReduceOp::kMean;
      const double inv = r > 0 ? 1.0 / static_cast<double>(r) : 0.0;
      return Run<SumOp<Tin>>(ctx, x, outer, r, inner, SumStore<Tout>{y, mean, inv});
    }
    case ReduceOp::kMax:
      return Run<ExtremeOp<Tin, true>>(ctx, x, outer, r, inner, ValueStore<Tout>{y});
    case ReduceOp::kMin:
      return Run<ExtremeOp<Tin, false>>(ctx, x, outer, r, inner, ValueStore<Tout>{y});
  }
  MS_FAIL("reduce: unknown op " << static_cast<int>(op));
}

}  // namespace

void Reduce(Context* ctx, ReduceOp op, DType in_dt, DType out_dt, const void* x, void* y,
            int64_t outer, int64_t r, int64_t inner) {
  if (in_dt == out_dt) {
    MS_TYPE_SWITCH(in_dt, T,
                   ReduceT<T, T>(ctx, op, static_cast<const T*>(x), static_cast<T*>(y), outer, r,
                                 inner));
  } else if (in_dt == DType::kFloat16 && out_dt == DType::kFloat32) {
    ReduceT<half_t, float>(ctx, op, static_cast<const half_t*>(x), static_cast<float*>(y), outer,
                           r, inner);
  } else if (in_dt == DType::kFloat32 && out_dt == DType::kFloat16) {
    ReduceT<float, half_t>(ctx, op, static_cast<const float*>(x), static_cast<half_t*>(y), outer,
                           r, inner);
  } else {
    MS_FAIL("reduce: unsupported dtype pair " << DTypeName(in_dt) << " -> "
                                              << DTypeName(out_dt));
  }
}

void ArgReduce(Context* ctx, bool is_max, DType dt, const void* x, int32_t* y, int64_t outer,
               int64_t r, int64_t inner) {
  MS_TYPE_SWITCH(dt, T, {
    const T* xp = static_cast<const T*>(x);
    if (is_max)
      Run<ArgOp<T, true>>(ctx, xp, outer, r, inner, IndexStore{y});
    else
      Run<ArgOp<T, false>>(ctx, xp, outer, r, inner, IndexStore{y});
  });
}

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
