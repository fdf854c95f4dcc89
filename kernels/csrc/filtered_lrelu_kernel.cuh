// filtered_lrelu fused in one kernel (kernel code only, no ATen): per tile of outputs, the block
// stages the biased source samples, computes the upsampled, activated intermediate samples the tile
// needs in shared memory, then filters and decimates them. Nothing intermediate goes to global memory.
#pragma once

#include <algorithm>

#include "geometry.cuh"

namespace stylecore {

struct FilteredLreluParams {
  int planes, channels, in_h, in_w, out_h, out_w;  // planes = N * C
  Axis uy, ux;  // upsampling pass: up, down 1, padding, fu taps
  Axis dy, dx;  // downsampling pass: up 1, down, no padding, fd taps
  bool flip_filter;
  float up_gain;   // up * up, folded into the fu taps
  float slope;     // leaky ReLU slope for negative inputs
  float act_gain;  // applied after the leaky ReLU
  float clamp;     // |value| limit after the gain; negative means none
  Tile tile;
};

// Intermediate (upsampled) samples a tile of outputs reads: exact, since the down pass has up = 1.
__host__ __device__ inline int filtered_lrelu_mid_h(const FilteredLreluParams& p, int tile_h) { return p.dy.max_source_count(tile_h); }
__host__ __device__ inline int filtered_lrelu_mid_w(const FilteredLreluParams& p, int tile_w) { return p.dx.max_source_count(tile_w); }

// Shared memory of one block: fu taps, fd taps, intermediate tile, source tile.
inline size_t filtered_lrelu_shared_bytes(const FilteredLreluParams& p, int tile_h, int tile_w) {
  const int mid_h = filtered_lrelu_mid_h(p, tile_h), mid_w = filtered_lrelu_mid_w(p, tile_w);
  return sizeof(float) * ((size_t)p.uy.taps * p.ux.taps + (size_t)p.dy.taps * p.dx.taps + (size_t)mid_h * mid_w +
                          (size_t)p.uy.max_source_count(mid_h) * p.ux.max_source_count(mid_w));
}

// Shared memory of one block of the separable kernel: 1-D fu and fd taps, the source tile (later
// reused for the horizontally decimated rows), the horizontally upsampled rows, the intermediate tile.
inline size_t filtered_lrelu_separable_shared_bytes(const FilteredLreluParams& p, int tile_h, int tile_w) {
  const int mid_h = filtered_lrelu_mid_h(p, tile_h), mid_w = filtered_lrelu_mid_w(p, tile_w);
  const int src_h = p.uy.max_source_count(mid_h), src_w = p.ux.max_source_count(mid_w);
  const size_t src_or_rows = std::max((size_t)src_h * src_w, (size_t)mid_h * tile_w);
  return sizeof(float) * ((size_t)p.ux.taps + p.dx.taps + src_or_rows + (size_t)src_h * mid_w + (size_t)mid_h * mid_w);
}

// The parameters of one call; out_h or out_w is 0 when the call has no output, tile.h is 0 when
// the filters do not fit in shared memory.
inline FilteredLreluParams filtered_lrelu_params(int planes, int channels, int in_h, int in_w, int fu_h, int fu_w,
                                                 int fd_h, int fd_w, int up, int down, int pad_x0, int pad_x1,
                                                 int pad_y0, int pad_y1, float gain, float slope, float clamp,
                                                 bool flip_filter, bool separable,
                                                 size_t shared_limit = kSharedLimit) {
  FilteredLreluParams p{};
  p.planes = planes;
  p.channels = channels;
  p.in_h = in_h;
  p.in_w = in_w;
  p.uy = Axis{up, 1, pad_y0, fu_h};
  p.ux = Axis{up, 1, pad_x0, fu_w};
  p.dy = Axis{1, down, 0, fd_h};
  p.dx = Axis{1, down, 0, fd_w};
  const int mid_h = upfirdn_length(in_h, up, pad_y0, pad_y1, fu_h, 1);
  const int mid_w = upfirdn_length(in_w, up, pad_x0, pad_x1, fu_w, 1);
  p.out_h = mid_h > 0 ? upfirdn_length(mid_h, 1, 0, 0, fd_h, down) : 0;
  p.out_w = mid_w > 0 ? upfirdn_length(mid_w, 1, 0, 0, fd_w, down) : 0;
  p.flip_filter = flip_filter;
  p.up_gain = static_cast<float>(up * up);
  p.slope = slope;
  p.act_gain = gain;
  p.clamp = clamp;
  p.tile = choose_tile(p.out_h, p.out_w, [&](int h, int w) {
    return separable ? filtered_lrelu_separable_shared_bytes(p, h, w) : filtered_lrelu_shared_bytes(p, h, w);
  }, shared_limit);
  return p;
}

__device__ inline float leaky_gain_clamp(float v, const FilteredLreluParams& p) {
  v = (v > 0.f ? v : v * p.slope) * p.act_gain;
  if (p.clamp >= 0.f) v = v < -p.clamp ? -p.clamp : (v > p.clamp ? p.clamp : v);  // NaN stays NaN
  return v;
}

// Where one block's tile starts in the output (o), intermediate (m) and source (s) images, and how
// many source rows and columns it reads: the same for every plane the block walks.
struct TileOrigin {
  int oy0, ox0, my0, mx0, sy0, sx0, src_h, src_w;
};

__device__ inline TileOrigin tile_origin(const FilteredLreluParams& p, int mid_h, int mid_w) {
  TileOrigin t;
  t.oy0 = blockIdx.y * p.tile.h;
  t.ox0 = blockIdx.x * p.tile.w;
  t.my0 = p.dy.source_begin(t.oy0);
  t.mx0 = p.dx.source_begin(t.ox0);
  t.sy0 = p.uy.source_begin(t.my0);
  t.sx0 = p.ux.source_begin(t.mx0);
  t.src_h = p.uy.source_count(t.my0, mid_h);
  t.src_w = p.ux.source_count(t.mx0, mid_w);
  return t;
}

// Stages the biased source samples of `plane` that the tile reads.
template <typename scalar_t>
__device__ inline void load_plane(float* src, const scalar_t* x, const float* bias, const FilteredLreluParams& p,
                                  const TileOrigin& t, int plane) {
  const float b = bias != nullptr ? bias[plane % p.channels] : 0.f;
  load_tile(src, x + (int64_t)plane * p.in_h * p.in_w, p.in_h, p.in_w, t.sy0, t.sx0, t.src_h, t.src_w, b);
}

template <typename scalar_t>
__global__ void filtered_lrelu_kernel(scalar_t* out, const scalar_t* x, const float* bias, const float* fu,
                                      const float* fd, FilteredLreluParams p) {
  extern __shared__ float smem[];
  const int fu_n = p.uy.taps * p.ux.taps, fd_n = p.dy.taps * p.dx.taps;
  const int mid_h = filtered_lrelu_mid_h(p, p.tile.h), mid_w = filtered_lrelu_mid_w(p, p.tile.w);
  float* taps_u = smem;
  float* taps_d = taps_u + fu_n;
  float* mid = taps_d + fd_n;
  float* src = mid + mid_h * mid_w;
  load_taps(taps_u, fu, fu_n, p.flip_filter, p.up_gain);
  load_taps(taps_d, fd, fd_n, p.flip_filter, 1.f);

  const TileOrigin t = tile_origin(p, mid_h, mid_w);
  const int oy0 = t.oy0, ox0 = t.ox0, my0 = t.my0, mx0 = t.mx0, sy0 = t.sy0, sx0 = t.sx0, src_w = t.src_w;

  for (int plane = blockIdx.z; plane < p.planes; plane += gridDim.z) {
    __syncthreads();  // taps stored; the previous plane's tiles are no longer read
    load_plane(src, x, bias, p, t, plane);
    __syncthreads();
    // Intermediate samples past the intermediate image only feed outputs past the output image.
    for (int k = threadIdx.x; k < mid_h * mid_w; k += blockDim.x) {
      const int my = my0 + k / mid_w, mx = mx0 + k % mid_w;
      const float v = gather(src, src_w, sy0, sx0, taps_u, p.uy, p.ux, p.uy.first_read(my), p.ux.first_read(mx));
      mid[k] = leaky_gain_clamp(v, p);
    }
    __syncthreads();
    write_tile(out + (int64_t)plane * p.out_h * p.out_w, p.out_h, p.out_w, p.tile, oy0, ox0, [&](int oy, int ox) {
      return gather(mid, mid_w, my0, mx0, taps_d, p.dy, p.dx, p.dy.first_read(oy), p.dx.first_read(ox));
    });
  }
}

// The same op with 1-D (separable) filters, as StyleGAN3-T uses them: four 1-D passes through shared
// memory (rows up, columns up + activation, rows down, columns down) instead of 2-D gathers, which
// reads about a quarter of the taps per intermediate sample. Each pass calls `gather` with a
// one-tap axis for the direction it does not filter.
template <typename scalar_t>
__global__ void filtered_lrelu_separable_kernel(scalar_t* out, const scalar_t* x, const float* bias, const float* fu,
                                                const float* fd, FilteredLreluParams p) {
  extern __shared__ float smem[];
  const Axis one{1, 1, 0, 1};
  const int mid_h = filtered_lrelu_mid_h(p, p.tile.h), mid_w = filtered_lrelu_mid_w(p, p.tile.w);
  const int src_rows = p.uy.max_source_count(mid_h), src_cols = p.ux.max_source_count(mid_w);
  float* taps_u = smem;
  float* taps_d = taps_u + p.ux.taps;
  float* src = taps_d + p.dx.taps;  // then the rows after the horizontal decimation
  const int src_or_rows = src_rows * src_cols > mid_h * p.tile.w ? src_rows * src_cols : mid_h * p.tile.w;
  float* up_rows = src + src_or_rows;
  float* mid = up_rows + src_rows * mid_w;
  load_taps(taps_u, fu, p.ux.taps, p.flip_filter, 1.f);
  load_taps(taps_d, fd, p.dx.taps, p.flip_filter, 1.f);

  const TileOrigin t = tile_origin(p, mid_h, mid_w);
  const int oy0 = t.oy0, ox0 = t.ox0, my0 = t.my0, mx0 = t.mx0, sy0 = t.sy0, sx0 = t.sx0, src_w = t.src_w;

  for (int plane = blockIdx.z; plane < p.planes; plane += gridDim.z) {
    __syncthreads();  // taps stored; the previous plane's tiles are no longer read
    load_plane(src, x, bias, p, t, plane);
    __syncthreads();
    for (int k = threadIdx.x; k < t.src_h * mid_w; k += blockDim.x) {  // rows: upsample along x
      const int r = k / mid_w, c = k % mid_w;
      up_rows[k] = gather(src, src_w, 0, sx0, taps_u, one, p.ux, r, p.ux.first_read(mx0 + c));
    }
    __syncthreads();
    for (int k = threadIdx.x; k < mid_h * mid_w; k += blockDim.x) {  // columns: upsample along y, activate
      const int r = k / mid_w, c = k % mid_w;
      const float v = gather(up_rows, mid_w, sy0, 0, taps_u, p.uy, one, p.uy.first_read(my0 + r), c);
      mid[k] = leaky_gain_clamp(v * p.up_gain, p);
    }
    __syncthreads();
    float* down_rows = src;
    for (int k = threadIdx.x; k < mid_h * p.tile.w; k += blockDim.x) {  // rows: decimate along x
      const int r = k / p.tile.w, c = k % p.tile.w;
      down_rows[k] = gather(mid, mid_w, 0, mx0, taps_d, one, p.dx, r, p.dx.first_read(ox0 + c));
    }
    __syncthreads();
    write_tile(out + (int64_t)plane * p.out_h * p.out_w, p.out_h, p.out_w, p.tile, oy0, ox0, [&](int oy, int ox) {
      return gather(down_rows, p.tile.w, my0, ox0, taps_d, p.dy, one, p.dy.first_read(oy), ox);
    });
  }
}

}  // namespace stylecore
