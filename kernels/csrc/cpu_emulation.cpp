// Test support, not part of any extension: runs the CUDA kernels' own code on the CPU, so their
// indexing is checked against the torch reference ops on machines without a GPU
// (tests/test_kernels_cuda.py builds it with g++ -std=c++20 and calls it through ctypes).
//
// Every block runs its threads as real threads, with a barrier for __syncthreads; shared memory is
// one static buffer, as blocks run one after another. float32 only.
#include <algorithm>
#include <barrier>
#include <functional>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __shared__

struct EmulatedDim3 {
  unsigned x, y, z;
};
thread_local EmulatedDim3 threadIdx{0, 0, 0};
EmulatedDim3 blockIdx{0, 0, 0}, blockDim{1, 1, 1}, gridDim{1, 1, 1};
static std::barrier<>* block_barrier = nullptr;
inline void __syncthreads() { block_barrier->arrive_and_wait(); }

namespace stylecore {
float smem[1 << 20];  // what `extern __shared__ float smem[]` in the kernels refers to
}

#include "bias_act_kernel.cuh"
#include "filtered_lrelu_kernel.cuh"
#include "upfirdn2d_kernel.cuh"

using namespace stylecore;

static void run_grid(unsigned grid_x, unsigned grid_y, unsigned grid_z, int threads,
                     const std::function<void()>& kernel) {
  gridDim = {grid_x, grid_y, grid_z};
  blockDim = {unsigned(threads), 1, 1};
  for (unsigned z = 0; z < grid_z; ++z)
    for (unsigned y = 0; y < grid_y; ++y)
      for (unsigned x = 0; x < grid_x; ++x) {
        blockIdx = {x, y, z};
        std::barrier<> barrier(threads);
        block_barrier = &barrier;
        std::vector<std::thread> block;
        for (int t = 0; t < threads; ++t)
          block.emplace_back([&kernel, t] {
            threadIdx = {unsigned(t), 0, 0};
            kernel();
          });
        for (auto& thread : block) thread.join();
      }
}

// The launches mirror the .cu launchers, with a chosen shared-memory limit (small limits force many
// tiles), thread count and grid z (fewer than the planes exercises the plane loop).
// Each returns 0, or -1 when the call has no output or does not fit.

extern "C" int emulate_upfirdn2d(float* out, const float* x, const float* f, int planes, int in_h, int in_w, int f_h,
                                 int f_w, int up_x, int up_y, int down_x, int down_y, int pad_x0, int pad_x1,
                                 int pad_y0, int pad_y1, int flip_filter, float gain, int shared_limit, int threads,
                                 int grid_z) {
  const UpFirDn2dParams p = upfirdn2d_params(planes, in_h, in_w, f_h, f_w, up_x, up_y, down_x, down_y, pad_x0,
                                             pad_x1, pad_y0, pad_y1, flip_filter, gain, shared_limit);
  if (p.out_h <= 0 || p.out_w <= 0 || p.tile.h == 0) return -1;
  run_grid(ceil_div(p.out_w, p.tile.w), ceil_div(p.out_h, p.tile.h), std::min(planes, grid_z), threads,
           [&] { upfirdn2d_kernel<float>(out, x, f, p); });
  return 0;
}

extern "C" int emulate_filtered_lrelu(float* out, const float* x, const float* b, const float* fu, const float* fd,
                                      int planes, int channels, int in_h, int in_w, int fu_h, int fu_w, int fd_h,
                                      int fd_w, int up, int down, int pad_x0, int pad_x1, int pad_y0, int pad_y1,
                                      float gain, float slope, float clamp, int flip_filter, int separable,
                                      int shared_limit, int threads, int grid_z) {
  const FilteredLreluParams p =
      filtered_lrelu_params(planes, channels, in_h, in_w, fu_h, fu_w, fd_h, fd_w, up, down, pad_x0, pad_x1, pad_y0,
                            pad_y1, gain, slope, clamp, flip_filter, separable != 0, shared_limit);
  if (p.out_h <= 0 || p.out_w <= 0 || p.tile.h == 0) return -1;
  run_grid(ceil_div(p.out_w, p.tile.w), ceil_div(p.out_h, p.tile.h), std::min(planes, grid_z), threads, [&] {
    if (separable)
      filtered_lrelu_separable_kernel<float>(out, x, b, fu, fd, p);
    else
      filtered_lrelu_kernel<float>(out, x, b, fu, fd, p);
  });
  return 0;
}

// act: the index in Activation's order (linear, relu, lrelu, tanh, sigmoid, elu, selu, softplus, swish).
extern "C" void emulate_bias_act(float* out, const float* x, const float* b, long long n, long long inner,
                                 long long channels, int act, float alpha, float gain, float clamp) {
  const BiasActParams p{n, inner, channels, static_cast<Activation>(act), alpha, gain, clamp};
  run_grid(3, 1, 1, 32, [&] { bias_act_kernel<float>(out, x, b, p); });
}
