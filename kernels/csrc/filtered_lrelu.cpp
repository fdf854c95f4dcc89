#include <torch/extension.h>

#include "filtered_lrelu.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Bias, upsample, leaky ReLU, clamp, downsample in one kernel (CUDA, forward).";
  m.def("filtered_lrelu", &filtered_lrelu_cuda, "fused filtered leaky ReLU; float32 filters both 1-D (separable) or both 2-D (or None)",
        py::arg("x"), py::arg("fu"), py::arg("fd"), py::arg("b"), py::arg("up"), py::arg("down"), py::arg("pad_x0"),
        py::arg("pad_x1"), py::arg("pad_y0"), py::arg("pad_y1"), py::arg("gain"), py::arg("slope"),
        py::arg("clamp"), py::arg("flip_filter"));
}
