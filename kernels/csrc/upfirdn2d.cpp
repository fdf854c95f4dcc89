#include <torch/extension.h>

#include "upfirdn2d.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Upsample, pad, FIR-filter, downsample (CUDA).";
  m.def("upfirdn2d", &upfirdn2d_cuda, "upfirdn2d with a 2-D float32 filter (or None)", py::arg("x"), py::arg("f"),
        py::arg("up_x"), py::arg("up_y"), py::arg("down_x"), py::arg("down_y"), py::arg("pad_x0"),
        py::arg("pad_x1"), py::arg("pad_y0"), py::arg("pad_y1"), py::arg("flip_filter"), py::arg("gain"));
}
