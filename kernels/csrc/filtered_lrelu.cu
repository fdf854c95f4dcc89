// Launcher of the fused filtered_lrelu kernel.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "dispatch.h"
#include "filtered_lrelu.h"
#include "filtered_lrelu_kernel.cuh"
#include "launch.cuh"

using namespace stylecore;

at::Tensor filtered_lrelu_cuda(const at::Tensor& x_in, const std::optional<at::Tensor>& fu_in,
                               const std::optional<at::Tensor>& fd_in, const std::optional<at::Tensor>& b_in,
                               int64_t up, int64_t down, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0,
                               int64_t pad_y1, double gain, double slope, double clamp, bool flip_filter) {
  TORCH_CHECK(x_in.is_cuda() && x_in.dim() == 4, "filtered_lrelu: x must be a 4-D CUDA tensor");
  TORCH_CHECK(up >= 1 && down >= 1, "filtered_lrelu: up and down must be >= 1");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const FilterArg fu = filter_arg(fu_in, x, "filtered_lrelu: fu", /*allow_1d=*/true);
  const FilterArg fd = filter_arg(fd_in, x, "filtered_lrelu: fd", /*allow_1d=*/true);
  const bool separable = fu.separable && fd.separable;
  TORCH_CHECK(separable || ((!fu_in.has_value() || fu_in->dim() == 2) && (!fd_in.has_value() || fd_in->dim() == 2)),
              "filtered_lrelu: give both filters 1-D (separable) or both 2-D");
  at::Tensor b;
  if (b_in.has_value()) {
    TORCH_CHECK(b_in->dim() == 1 && b_in->size(0) == x.size(1) && b_in->scalar_type() == at::kFloat &&
                    b_in->device() == x.device(),
                "filtered_lrelu: b must be a float32 tensor of shape [", x.size(1), "] on the device of x");
    b = b_in->contiguous();
  }

  const FilteredLreluParams p = filtered_lrelu_params(
      static_cast<int>(x.size(0) * x.size(1)), static_cast<int>(x.size(1)), static_cast<int>(x.size(2)),
      static_cast<int>(x.size(3)), fu.h, fu.w, fd.h, fd.w, int(up), int(down), int(pad_x0), int(pad_x1),
      int(pad_y0), int(pad_y1), static_cast<float>(gain), static_cast<float>(slope), static_cast<float>(clamp),
      flip_filter, separable);
  TORCH_CHECK(p.out_h > 0 && p.out_w > 0, "filtered_lrelu: padding ", pad_x0, ",", pad_x1, ",", pad_y0, ",",
              pad_y1, " and the filters leave no output for a ", x.size(2), "x", x.size(3), " input");
  at::Tensor out = at::empty({x.size(0), x.size(1), p.out_h, p.out_w}, x.options());
  if (out.numel() == 0) return out;
  TORCH_CHECK(p.tile.h > 0, "filtered_lrelu: filters of ", fu.h, "x", fu.w, " and ", fd.h, "x", fd.w,
              " taps do not fit the kernel's shared memory");

  const size_t shared = separable ? filtered_lrelu_separable_shared_bytes(p, p.tile.h, p.tile.w)
                                  : filtered_lrelu_shared_bytes(p, p.tile.h, p.tile.w);
  const dim3 grid = tile_grid(p.out_h, p.out_w, p.tile, p.planes);
  const int threads = block_threads(filtered_lrelu_mid_h(p, p.tile.h) * filtered_lrelu_mid_w(p, p.tile.w));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const float* b_data = b.defined() ? b.data_ptr<float>() : nullptr;
  STYLECORE_DISPATCH_FLOATS(x.scalar_type(), "filtered_lrelu", [&] {
    if (separable)
      filtered_lrelu_separable_kernel<scalar_t><<<grid, threads, shared, stream>>>(
          out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), b_data, fu.data, fd.data, p);
    else
      filtered_lrelu_kernel<scalar_t><<<grid, threads, shared, stream>>>(
          out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), b_data, fu.data, fd.data, p);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}
