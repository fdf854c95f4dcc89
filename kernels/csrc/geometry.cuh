// Geometry shared by the upfirdn2d and filtered_lrelu kernels: which source samples a tile of outputs
// reads, and the polyphase gather that skips the zeros that zero-insertion upsampling would add.
//
// Kernel code only (no ATen), so the same file also compiles as plain C++ for a CPU emulation check.
#pragma once

#include <cstddef>
#include <cstdint>

namespace stylecore {

// Integer division rounding toward minus infinity (C++ '/' truncates toward zero); b > 0.
__host__ __device__ inline int floor_div(int a, int b) { return a >= 0 ? a / b : -((b - 1 - a) / b); }
__host__ __device__ inline int ceil_div(int a, int b) { return -floor_div(-a, b); }
// a mod b in [0, b); b > 0.
__host__ __device__ inline int pos_mod(int a, int b) { return a - floor_div(a, b) * b; }

// One axis of upfirdn: insert up-1 zeros after every sample, shift by pad0 (a crop when negative),
// correlate with `taps` filter taps, keep every down-th result. Output o reads the upsampled
// (unpadded) coordinates first_read(o) .. first_read(o) + taps - 1; those divisible by `up` are
// source samples, the others are inserted zeros.
struct Axis {
  int up, down, pad0, taps;

  __host__ __device__ int first_read(int o) const { return o * down - pad0; }

  // First source sample read by outputs o, o + 1, ...
  __host__ __device__ int source_begin(int o) const { return ceil_div(first_read(o), up); }

  // Number of source samples (image or zero padding) read by outputs [o, o + n).
  __host__ __device__ int source_count(int o, int n) const {
    const int end = floor_div(first_read(o + n - 1) + taps - 1, up) + 1;
    const int count = end - source_begin(o);
    return count > 0 ? count : 0;
  }

  // Largest source_count(o, n) over all o (the multiples of `up` among (n-1)*down + taps
  // consecutive integers): sizes shared memory before the block knows its o.
  __host__ __device__ int max_source_count(int n) const { return ceil_div((n - 1) * down + taps, up); }
};

// Output length of one upfirdn axis, or 0 when padding and filter leave nothing (the op is undefined).
inline int upfirdn_length(int in, int up, int pad0, int pad1, int taps, int down) {
  const int64_t span = (int64_t)in * up + pad0 + pad1 - taps;
  return span < 0 ? 0 : static_cast<int>(span / down + 1);
}

// Outputs computed by one thread block.
struct Tile {
  int h, w;
};

// Shared memory every CUDA device gives a block without opting in.
constexpr size_t kSharedLimit = 48 * 1024;

// The largest tile, up to 32x32 and no larger than the output, whose shared memory `bytes(h, w)`
// fits `limit`. {0, 0} when nothing fits or the output is empty.
template <typename Bytes>
inline Tile choose_tile(int out_h, int out_w, Bytes bytes, size_t limit) {
  if (out_h <= 0 || out_w <= 0) return Tile{0, 0};
  Tile t{out_h < 32 ? out_h : 32, out_w < 32 ? out_w : 32};
  while (bytes(t.h, t.w) > limit) {
    if (t.h == 1 && t.w == 1) return Tile{0, 0};
    if (t.h >= t.w)
      t.h = (t.h + 1) / 2;
    else
      t.w = (t.w + 1) / 2;
  }
  return t;
}

// Stores `n` filter taps in correlation order, times `gain`. The op convolves (reversed taps) unless
// flip_filter; reversing the row-major order flips both axes. A null filter is the 1x1 identity.
__device__ inline void load_taps(float* taps, const float* f, int n, bool flip_filter, float gain) {
  if (f == nullptr) {
    if (threadIdx.x == 0) taps[0] = gain;
    return;
  }
  for (int k = threadIdx.x; k < n; k += blockDim.x) taps[k] = f[flip_filter ? k : n - 1 - k] * gain;
}

// Copies source rows [sy0, sy0 + h) and columns [sx0, sx0 + w) of one plane into `tile` as float,
// plus `bias` on image samples; zero padding (outside the image) stays zero.
template <typename scalar_t>
__device__ inline void load_tile(float* tile, const scalar_t* plane, int in_h, int in_w, int sy0, int sx0,
                                 int h, int w, float bias) {
  for (int k = threadIdx.x; k < h * w; k += blockDim.x) {
    const int y = sy0 + k / w, x = sx0 + k % w;
    const bool inside = y >= 0 && y < in_h && x >= 0 && x < in_w;
    tile[k] = inside ? static_cast<float>(plane[(int64_t)y * in_w + x]) + bias : 0.f;
  }
}

// Writes one tile of outputs (rows from oy0, columns from ox0, clipped to the image): the block's
// threads share its outputs, each computed by `output(oy, ox)` from the tile staged in shared memory.
template <typename scalar_t, typename Output>
__device__ inline void write_tile(scalar_t* dst, int out_h, int out_w, Tile tile, int oy0, int ox0, Output output) {
  for (int k = threadIdx.x; k < tile.h * tile.w; k += blockDim.x) {
    const int oy = oy0 + k / tile.w, ox = ox0 + k % tile.w;
    if (oy >= out_h || ox >= out_w) continue;
    dst[(int64_t)oy * out_w + ox] = static_cast<scalar_t>(output(oy, ox));
  }
}

// One output: the correlation of the source tile with the taps (row-major, ay.taps x ax.taps), reading
// only the taps that land on source samples (polyphase). (vy, vx) is the upsampled coordinate of
// tap (0, 0); the tile holds source rows from sy0 and columns from sx0 and is tile_w wide.
__device__ inline float gather(const float* tile, int tile_w, int sy0, int sx0, const float* taps,
                               const Axis& ay, const Axis& ax, int vy, int vx) {
  float sum = 0.f;
  const int j0 = pos_mod(-vx, ax.up);
  for (int i = pos_mod(-vy, ay.up); i < ay.taps; i += ay.up) {
    const float* src_row = tile + ((vy + i) / ay.up - sy0) * tile_w;
    const float* tap_row = taps + i * ax.taps;
    for (int j = j0; j < ax.taps; j += ax.up) sum += src_row[(vx + j) / ax.up - sx0] * tap_row[j];
  }
  return sum;
}

}  // namespace stylecore
