#pragma once

#include <optional>

#include <ATen/core/Tensor.h>

// down(fd * clamp(lrelu(up(fu * (x + b)) * up^2, slope) * gain)), fu/fd float32 filters, both 1-D
// (separable) or both 2-D (none: identity), b a float32 per-channel bias; clamp < 0 means none.
at::Tensor filtered_lrelu_cuda(const at::Tensor& x, const std::optional<at::Tensor>& fu,
                               const std::optional<at::Tensor>& fd, const std::optional<at::Tensor>& b,
                               int64_t up, int64_t down, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0,
                               int64_t pad_y1, double gain, double slope, double clamp, bool flip_filter);
