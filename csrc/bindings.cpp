// fastdl._cpp: C++ kernels behind fastdl's backend switch.
#include <pybind11/pybind11.h>

#ifdef FASTDL_HAVE_OPENMP
#include <omp.h>
#endif

#ifndef FASTDL_VERSION
#define FASTDL_VERSION "unknown"
#endif

namespace py = pybind11;

static std::string compiler_string() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#else
  return "unknown";
#endif
}

PYBIND11_MODULE(_cpp, m) {
  m.doc() = "fastdl C++ kernels";
  m.attr("__version__") = FASTDL_VERSION;
  m.def("build_info", []() {
    py::dict d;
    d["version"] = FASTDL_VERSION;
    d["compiler"] = compiler_string();
#ifdef FASTDL_HAVE_OPENMP
    d["openmp"] = true;
#else
    d["openmp"] = false;
#endif
    return d;
  }, "Version, compiler and OpenMP status of the compiled extension.");
}
