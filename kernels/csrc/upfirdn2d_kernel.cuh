// upfirdn2d as a direct per-output gather over shared-memory tiles (kernel code only, no ATen).
#pragma once

#include "geometry.cuh"

namespace stylecore {

struct UpFirDn2dParams {
  int planes, in_h, in_w, out_h, out_w;  // planes = N * C
  Axis ay, ax;
  bool flip_filter;
  float gain;
  Tile tile;
};

// Shared memory of one block: the taps, then the source samples its tile of outputs reads.
inline size_t upfirdn2d_shared_bytes(const UpFirDn2dParams& p, int tile_h, int tile_w) {
  return sizeof(float) * ((size_t)p.ay.taps * p.ax.taps +
                          (size_t)p.ay.max_source_count(tile_h) * p.ax.max_source_count(tile_w));
}

// The parameters of one call; out_h or out_w is 0 when the call has no output, tile.h is 0 when
// the filter does not fit in shared memory.
inline UpFirDn2dParams upfirdn2d_params(int planes, int in_h, int in_w, int f_h, int f_w, int up_x, int up_y,
                                        int down_x, int down_y, int pad_x0, int pad_x1, int pad_y0, int pad_y1,
                                        bool flip_filter, float gain, size_t shared_limit = kSharedLimit) {
  UpFirDn2dParams p{};
  p.planes = planes;
  p.in_h = in_h;
  p.in_w = in_w;
  p.ay = Axis{up_y, down_y, pad_y0, f_h};
  p.ax = Axis{up_x, down_x, pad_x0, f_w};
  p.out_h = upfirdn_length(in_h, up_y, pad_y0, pad_y1, f_h, down_y);
  p.out_w = upfirdn_length(in_w, up_x, pad_x0, pad_x1, f_w, down_x);
  p.flip_filter = flip_filter;
  p.gain = gain;
  p.tile = choose_tile(p.out_h, p.out_w, [&](int h, int w) { return upfirdn2d_shared_bytes(p, h, w); }, shared_limit);
  return p;
}

// Block (x, y) owns one tile of outputs and walks the planes z, z + gridDim.z, ...: it stages the
// source samples the tile reads in shared memory, then gathers every output of the tile from there.
template <typename scalar_t>
__global__ void upfirdn2d_kernel(scalar_t* out, const scalar_t* x, const float* f, UpFirDn2dParams p) {
  extern __shared__ float smem[];
  float* taps = smem;
  float* src = smem + p.ay.taps * p.ax.taps;
  load_taps(taps, f, p.ay.taps * p.ax.taps, p.flip_filter, p.gain);

  const int oy0 = blockIdx.y * p.tile.h, ox0 = blockIdx.x * p.tile.w;
  const int sy0 = p.ay.source_begin(oy0), sx0 = p.ax.source_begin(ox0);
  const int src_h = p.ay.source_count(oy0, p.tile.h), src_w = p.ax.source_count(ox0, p.tile.w);

  for (int plane = blockIdx.z; plane < p.planes; plane += gridDim.z) {
    __syncthreads();  // taps stored; the previous plane's tile is no longer read
    load_tile(src, x + (int64_t)plane * p.in_h * p.in_w, p.in_h, p.in_w, sy0, sx0, src_h, src_w, 0.f);
    __syncthreads();
    write_tile(out + (int64_t)plane * p.out_h * p.out_w, p.out_h, p.out_w, p.tile, oy0, ox0, [&](int oy, int ox) {
      return gather(src, src_w, sy0, sx0, taps, p.ay, p.ax, p.ay.first_read(oy), p.ax.first_read(ox));
    });
  }
}

}  // namespace stylecore
