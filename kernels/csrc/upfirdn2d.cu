// Launcher of the upfirdn2d kernel.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "dispatch.h"
#include "launch.cuh"
#include "upfirdn2d.h"
#include "upfirdn2d_kernel.cuh"

using namespace stylecore;

at::Tensor upfirdn2d_cuda(const at::Tensor& x_in, const std::optional<at::Tensor>& f_in, int64_t up_x, int64_t up_y,
                          int64_t down_x, int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0,
                          int64_t pad_y1, bool flip_filter, double gain) {
  TORCH_CHECK(x_in.is_cuda() && x_in.dim() == 4, "upfirdn2d: x must be a 4-D CUDA tensor");
  TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1, "upfirdn2d: up and down must be >= 1");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const FilterArg f = filter_arg(f_in, x, "upfirdn2d: f");

  const UpFirDn2dParams p = upfirdn2d_params(
      static_cast<int>(x.size(0) * x.size(1)), static_cast<int>(x.size(2)), static_cast<int>(x.size(3)), f.h, f.w,
      int(up_x), int(up_y), int(down_x), int(down_y), int(pad_x0), int(pad_x1), int(pad_y0), int(pad_y1),
      flip_filter, static_cast<float>(gain));
  TORCH_CHECK(p.out_h > 0 && p.out_w > 0, "upfirdn2d: padding ", pad_x0, ",", pad_x1, ",", pad_y0, ",", pad_y1,
              " and a ", f.h, "x", f.w, " filter leave no output for a ", x.size(2), "x", x.size(3), " input");
  at::Tensor out = at::empty({x.size(0), x.size(1), p.out_h, p.out_w}, x.options());
  if (out.numel() == 0) return out;
  TORCH_CHECK(p.tile.h > 0, "upfirdn2d: a ", f.h, "x", f.w, " filter does not fit the kernel's shared memory");

  const size_t shared = upfirdn2d_shared_bytes(p, p.tile.h, p.tile.w);
  const dim3 grid = tile_grid(p.out_h, p.out_w, p.tile, p.planes);
  const int threads = block_threads(p.tile.h * p.tile.w);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  STYLECORE_DISPATCH_FLOATS(x.scalar_type(), "upfirdn2d", [&] {
    upfirdn2d_kernel<scalar_t><<<grid, threads, shared, stream>>>(out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                                                                 f.data, p);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}
