#pragma once

#include <optional>

#include <ATen/core/Tensor.h>

// Upsample by zero insertion, pad (crop when negative), convolve with the 2-D float32 filter f
// (correlate when flip_filter; none is the identity), times gain, keep every down-th sample.
at::Tensor upfirdn2d_cuda(const at::Tensor& x, const std::optional<at::Tensor>& f, int64_t up_x, int64_t up_y,
                          int64_t down_x, int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0,
                          int64_t pad_y1, bool flip_filter, double gain);
