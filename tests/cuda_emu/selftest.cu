// Checks of the CUDA emulator itself (run by tests/test_cuda_emu.py): barriers and shuffles
// across 2-D blocks, barriers that depend on the arguments, deadlock detection, launch
// configuration errors, copy checks, stream capture, cuBLAS and float16 rounding.
// Prints "ok <check>" per check, or "FAIL <check>: <why>" and exits 1.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

int failures = 0;

void Check(bool ok, const char* name, const std::string& why = "") {
  if (ok) {
    std::printf("ok %s\n", name);
  } else {
    std::printf("FAIL %s: %s\n", name, why.c_str());
    failures++;
  }
}

// Each block sums (block, thread) values twice: a shared-memory tree with __syncthreads and
// warp shuffles; the block is 2-D (16 x 8) so threadIdx.y counts.
__global__ void BlockSums(const int* in, int* tree, int* shfl) {
  __shared__ int s[128];
  const int t = threadIdx.y * blockDim.x + threadIdx.x;
  const int v = in[blockIdx.x * 128 + t];
  s[t] = v;
  __syncthreads();
  for (int k = 64; k > 0; k >>= 1) {
    if (t < k) s[t] += s[t + k];
    __syncthreads();
  }
  if (t == 0) tree[blockIdx.x] = s[0];
  int w = v;
  for (int o = 16; o > 0; o >>= 1) w += __shfl_xor_sync(0xffffffffu, w, o);
  if ((t & 31) == 0) atomicAdd(&shfl[blockIdx.x], w);
}

// A barrier only when asked (as a kernel whose mode is an argument), threads past `live`
// leaving before it.
__global__ void MaybeSync(int* out, bool sync, int live) {
  __shared__ int s[64];
  const int t = threadIdx.x;
  if (t >= live) return;
  s[t] = t;
  if (sync) __syncthreads();
  out[t] = sync ? s[live - 1 - t] : -1;
}

// Lane 0 waits at a block barrier while the others wait at a shuffle: never completes.
__global__ void Deadlock(int* out) {
  int v = threadIdx.x;
  if (threadIdx.x == 0)
    __syncthreads();
  else
    v = __shfl_xor_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

// Two races (on purpose): each thread reads its right neighbour's shared value with no
// barrier between, and each block reads what the block before it wrote. The values seen
// show the order in which the emulator ran the threads and the blocks.
__global__ void Races(int* seen_thread, int* seen_block, int* marks) {
  __shared__ int s[32];
  const int t = threadIdx.x;
  s[t] = blockIdx.x * 100 + t;
  if (blockIdx.x == 1 && t == 0) *seen_thread = s[1];
  if (t == 0) {
    marks[blockIdx.x] = 1;
    if (blockIdx.x == 1) *seen_block = marks[0];
  }
}

template <typename T>
__global__ void Fill(T* p, int n, T v) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
    p[i] = v;
}

__global__ void Count(int* c) { atomicAdd(c, 1); }

bool NaiveGemmOk(bool ta, bool tb, int m, int n, int k, const float* A, int lda, const float* B,
                 int ldb, const float* C, int ldc) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double acc = 0;
      for (int p = 0; p < k; p++)
        acc += (ta ? A[p + i * lda] : A[i + p * lda]) * (tb ? B[j + p * ldb] : B[p + j * ldb]);
      if (std::fabs(acc - C[i + j * ldc]) > 1e-4) return false;
    }
  return true;
}

}  // namespace

int main() {
  cudaStream_t s = nullptr;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);

  {  // barriers and shuffles
    const int blocks = 3;
    std::vector<int> host(blocks * 128), want(blocks, 0);
    for (int i = 0; i < blocks * 128; i++) host[i] = (i * 37) % 101 - 50, want[i / 128] += host[i];
    int *in, *tree, *shfl;
    cudaMalloc(&in, host.size() * sizeof(int));
    cudaMalloc(&tree, blocks * sizeof(int));
    cudaMalloc(&shfl, blocks * sizeof(int));
    cudaMemcpyAsync(in, host.data(), host.size() * sizeof(int), cudaMemcpyHostToDevice, s);
    cudaMemsetAsync(shfl, 0, blocks * sizeof(int), s);
    BlockSums<<<blocks, dim3(16, 8), 0, s>>>(in, tree, shfl);
    std::vector<int> t(blocks), w(blocks);
    cudaMemcpyAsync(t.data(), tree, blocks * sizeof(int), cudaMemcpyDeviceToHost, s);
    cudaMemcpyAsync(w.data(), shfl, blocks * sizeof(int), cudaMemcpyDeviceToHost, s);
    const std::string expected = " vs " + std::to_string(want[0]);
    Check(t == want, "block tree reduction", std::to_string(t[0]) + expected);
    Check(w == want, "warp shuffle reduction", std::to_string(w[0]) + expected);
    cudaFree(in), cudaFree(tree), cudaFree(shfl);
  }

  {  // barriers that depend on arguments; threads that leave early
    int* out;
    cudaMalloc(&out, 64 * sizeof(int));
    std::vector<int> h(64);
    MaybeSync<<<1, 64, 0, s>>>(out, false, 64);
    MaybeSync<<<1, 64, 0, s>>>(out, true, 40);
    cudaMemcpyAsync(h.data(), out, 64 * sizeof(int), cudaMemcpyDeviceToHost, s);
    Check(h[0] == 39 && h[39] == 0 && h[40] == -1, "argument-dependent barrier",
          std::to_string(h[0]) + " " + std::to_string(h[39]) + " " + std::to_string(h[40]));
    std::string why;
    try {
      Deadlock<<<1, 32, 0, s>>>(out);
    } catch (const std::exception& e) {
      why = e.what();
    }
    Check(why.find("deadlock") != std::string::npos, "deadlock detected", why);
    cudaFree(out);
  }

  {  // the schedule: forward by default, last to first with MSEMU_SCHEDULE=reverse
    const char* env = std::getenv("MSEMU_SCHEDULE");
    const bool reverse = env != nullptr && std::string(env) == "reverse";
    int* d;
    cudaMalloc(&d, 4 * sizeof(int));
    cudaMemsetAsync(d, 0, 4 * sizeof(int), s);
    Races<<<2, 32, 0, s>>>(d, d + 1, d + 2);
    int h[2] = {0, 0};
    cudaMemcpyAsync(h, d, 2 * sizeof(int), cudaMemcpyDeviceToHost, s);
    // Forward: thread 0 of block 1 runs before thread 1 writes (it sees block 0's 1), and
    // block 0 has marked. Reverse: thread 1 has written 101, and block 0 has not run.
    Check(reverse ? h[0] == 101 && h[1] == 0 : h[0] == 1 && h[1] == 1,
          reverse ? "reverse schedule" : "forward schedule",
          std::to_string(h[0]) + " " + std::to_string(h[1]));
    cudaFree(d);
  }

  {  // launch configurations
    int* c;
    cudaMalloc(&c, sizeof(int));
    cudaMemsetAsync(c, 0, sizeof(int), s);
    (void)cudaGetLastError();
    Count<<<1, 2048, 0, s>>>(c);
    const cudaError_t e1 = cudaGetLastError(), e2 = cudaGetLastError();
    Count<<<dim3(2, 3), dim3(4, 2, 2), 0, s>>>(c);
    int h = 0;
    cudaMemcpyAsync(&h, c, sizeof(int), cudaMemcpyDeviceToHost, s);
    Check(e1 == cudaErrorInvalidConfiguration && e2 == cudaSuccess, "bad block size refused");
    Check(h == 6 * 16, "3-D grid and block", std::to_string(h));
    Fill<<<2, 32, 0, s>>>(c, 1, 7);  // T deduced from the arguments, as nvcc does
    cudaMemcpyAsync(&h, c, sizeof(int), cudaMemcpyDeviceToHost, s);
    Check(h == 7, "deduced template launch");
    cudaFree(c);
  }

  {  // copies and frees
    float* d;
    cudaMalloc(&d, 16 * sizeof(float));
    std::vector<float> h(32, 1.f);
    Check(cudaMemcpyAsync(h.data(), d, 16 * sizeof(float), cudaMemcpyHostToDevice, s) ==
              cudaErrorInvalidValue,
          "copy kind checked");
    Check(cudaMemcpyAsync(d, h.data(), 32 * sizeof(float), cudaMemcpyHostToDevice, s) ==
              cudaErrorInvalidValue,
          "copy past an allocation refused");
    Check(cudaMemcpyAsync(d + 1, d, 8 * sizeof(float), cudaMemcpyDeviceToDevice, s) ==
              cudaErrorInvalidValue,
          "overlapping copy refused");
    Check(cudaFree(h.data()) == cudaErrorInvalidValue, "foreign free refused");
    Check(cudaFree(d) == cudaSuccess && cudaFree(d) == cudaErrorInvalidValue,
          "double free refused");
    (void)cudaGetLastError();
  }

  {  // stream capture
    int* d;
    cudaMalloc(&d, 4 * sizeof(int));
    cudaMemsetAsync(d, 0, 4 * sizeof(int), s);
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    Fill<<<1, 4, 0, s>>>(d, 4, 5);
    const bool deferred = d[0] == 0;  // emulated device memory is host memory
    cudaGraph_t g = nullptr;
    const cudaError_t end = cudaStreamEndCapture(s, &g);
    cudaGraphExec_t x = nullptr;
    cudaGraphInstantiate(&x, g, 0);
    cudaGraphLaunch(x, s);
    Check(deferred && end == cudaSuccess && d[0] == 5 && d[3] == 5, "captured work runs at launch");
    cudaGraphExecDestroy(x), cudaGraphDestroy(g);
    int h = 0;
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    const cudaError_t copy = cudaMemcpyAsync(&h, d, sizeof(int), cudaMemcpyDeviceToHost, s);
    void* p = nullptr;
    const cudaError_t alloc = cudaMalloc(&p, 64);
    const cudaError_t sync = cudaStreamSynchronize(s);
    const cudaError_t end2 = cudaStreamEndCapture(s, &g);
    Check(copy == cudaErrorStreamCaptureUnsupported &&
              alloc == cudaErrorStreamCaptureUnsupported &&
              sync == cudaErrorStreamCaptureUnsupported &&
              end2 == cudaErrorStreamCaptureInvalidated && g == nullptr,
          "capture refuses host copies, cudaMalloc and syncs");
    (void)cudaGetLastError();
    cudaFree(d);
  }

  {  // cuBLAS
    cublasHandle_t hb;
    cublasCreate(&hb);
    cublasSetStream(hb, s);
    const int m = 3, n = 4, k = 5, batch = 2;
    std::vector<float> A(batch * 40), B(batch * 40), C(batch * 12, 0.f);
    for (size_t i = 0; i < A.size(); i++) {
      A[i] = 0.1f * (i % 7) - 0.3f;
      B[i] = 0.2f * (i % 5) - 0.4f;
    }
    float *dA, *dB, *dC;
    cudaMalloc(&dA, A.size() * 4), cudaMalloc(&dB, B.size() * 4), cudaMalloc(&dC, C.size() * 4);
    cudaMemcpyAsync(dA, A.data(), A.size() * 4, cudaMemcpyHostToDevice, s);
    cudaMemcpyAsync(dB, B.data(), B.size() * 4, cudaMemcpyHostToDevice, s);
    const float one = 1.f, zero = 0.f;
    // op(A) = A^T with A stored k x m (lda 5), B stored k x n (ldb 5)
    cublasStatus_t st = cublasSgemmStridedBatched(hb, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, dA,
                                                  k, 20, dB, k, 20, &zero, dC, m, 12, batch);
    cudaMemcpyAsync(C.data(), dC, C.size() * 4, cudaMemcpyDeviceToHost, s);
    Check(st == CUBLAS_STATUS_SUCCESS &&
              NaiveGemmOk(true, false, m, n, k, A.data(), k, B.data(), k, C.data(), m) &&
              NaiveGemmOk(true, false, m, n, k, A.data() + 20, k, B.data() + 20, k,
                          C.data() + 12, m),
          "strided batched GEMM");
    Check(cublasSgemm(hb, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, dA, 2, dB, k, &zero, dC, m) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "small leading dimension refused");
    Check(cublasSgemmStridedBatched(hb, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, dA, k, 20, dB, k,
                                    20, &zero, dC, m, 12, 3) == CUBLAS_STATUS_INVALID_VALUE,
          "GEMM past an allocation refused");
    // float16 operands and result, float32 arithmetic (cublasGemmStridedBatchedEx)
    std::vector<__half> hA(40), hB(40), hC(12);
    std::vector<float> rA(40), rB(40);
    for (int i = 0; i < 40; i++) {
      hA[i] = __float2half_rn(A[i]), hB[i] = __float2half_rn(B[i]);
      rA[i] = __half2float(hA[i]), rB[i] = __half2float(hB[i]);
    }
    __half *dhA, *dhB, *dhC;
    cudaMalloc(&dhA, 80), cudaMalloc(&dhB, 80), cudaMalloc(&dhC, 24);
    cudaMemcpyAsync(dhA, hA.data(), 80, cudaMemcpyHostToDevice, s);
    cudaMemcpyAsync(dhB, hB.data(), 80, cudaMemcpyHostToDevice, s);
    st = cublasGemmStridedBatchedEx(hb, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, dhA, CUDA_R_16F,
                                    k, 0, dhB, CUDA_R_16F, k, 0, &zero, dhC, CUDA_R_16F, m, 0, 1,
                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    cudaMemcpyAsync(hC.data(), dhC, 24, cudaMemcpyDeviceToHost, s);
    std::vector<float> fC(12);
    for (int i = 0; i < 12; i++) fC[i] = __half2float(hC[i]);
    bool half_ok = st == CUBLAS_STATUS_SUCCESS;
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) {
        float ref = 0;
        for (int p = 0; p < k; p++) ref += rA[p + i * k] * rB[p + j * k];
        half_ok &= std::fabs(fC[i + j * m] - ref) <= 1e-3f * std::max(1.f, std::fabs(ref));
      }
    Check(half_ok, "float16 GEMM with float32 compute");
    (void)cudaGetLastError();
    cudaFree(dA), cudaFree(dB), cudaFree(dC), cudaFree(dhA), cudaFree(dhB), cudaFree(dhC);
  }

  {  // float16: round to nearest even, overflow, subnormals, every half round-trips
    auto H = [](float f) { return __half_as_ushort(__float2half_rn(f)); };
    Check(H(65504.f) == 0x7bff && H(65519.f) == 0x7bff && H(65520.f) == 0x7c00 &&
              H(-1e6f) == 0xfc00,
          "float16 overflow");
    Check(H(1.f + std::ldexp(1.f, -11)) == 0x3c00 && H(1.f + 3 * std::ldexp(1.f, -11)) == 0x3c02,
          "float16 ties to even");
    Check(H(std::ldexp(1.f, -24)) == 1 && H(std::ldexp(1.f, -25)) == 0 &&
              H(3 * std::ldexp(1.f, -25)) == 2 && H(-std::ldexp(1.f, -14)) == 0x8400,
          "float16 subnormals");
    bool round_trip = true;
    for (unsigned b = 0; b < 65536; b++) {
      const float f = __half2float(__ushort_as_half(static_cast<unsigned short>(b)));
      if (f == f && H(f) != b) round_trip = false;
    }
    Check(round_trip && std::isnan(__half2float(__ushort_as_half(0x7e00))), "float16 round trip");
  }

  std::printf(failures ? "%d failed\n" : "all passed\n", failures);
  return failures ? 1 : 0;
}
