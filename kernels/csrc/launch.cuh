// Host-side helpers shared by the launchers: argument checks and launch shapes.
#pragma once

#include <algorithm>
#include <optional>

#include <ATen/core/Tensor.h>
#include <cuda_runtime.h>

#include "geometry.cuh"

namespace stylecore {

constexpr int kThreads = 256;
constexpr int kMaxGridZ = 65535;

// A filter as the kernels read it: float32, contiguous, on x's device; 2-D, or 1-D (separable: the
// same taps along both axes) where a kernel takes that; none is the 1x1 identity.
struct FilterArg {
  at::Tensor tensor;  // keeps a contiguous copy alive during the launch
  const float* data = nullptr;
  int h = 1, w = 1;
  bool separable = true;  // none or 1-D
};

inline FilterArg filter_arg(const std::optional<at::Tensor>& f, const at::Tensor& x, const char* what,
                            bool allow_1d = false) {
  FilterArg arg;
  if (!f.has_value()) return arg;
  TORCH_CHECK((f->dim() == 2 || (allow_1d && f->dim() == 1)) && f->scalar_type() == at::kFloat &&
                  f->device() == x.device(),
              what, allow_1d ? " must be a 1-D or 2-D float32 tensor on the device of x"
                             : " must be a 2-D float32 tensor on the device of x");
  arg.tensor = f->contiguous();
  arg.data = arg.tensor.data_ptr<float>();
  arg.separable = f->dim() == 1;
  arg.h = static_cast<int>(arg.tensor.size(0));
  arg.w = static_cast<int>(arg.tensor.size(-1));
  TORCH_CHECK(arg.h > 0 && arg.w > 0, what, " is empty");
  return arg;
}

// One block per tile of outputs (x, y) and per plane, looping over planes beyond the grid's z limit.
inline dim3 tile_grid(int out_h, int out_w, Tile tile, int planes) {
  return dim3(ceil_div(out_w, tile.w), ceil_div(out_h, tile.h), std::min(planes, kMaxGridZ));
}

// Threads for a block that loops over `work` items: a warp multiple up to kThreads.
inline int block_threads(int work) {
  const int warps = (work + 31) / 32;
  return warps >= kThreads / 32 ? kThreads : (warps < 1 ? 32 : warps * 32);
}

}  // namespace stylecore
