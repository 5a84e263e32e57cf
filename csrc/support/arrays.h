// new_array<T>(shape): the C-contiguous result arrays of the pybind11 bindings.
//
// Large arrays take their memory from the block cache of alloc.h, owned by a capsule that
// hands the block back when the array (and every view of it) is gone; small ones come from
// NumPy as usual.  Call with the GIL held.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <vector>

#include "alloc.h"

namespace fastdl {

template <class T>
pybind11::array_t<T, pybind11::array::c_style> new_array(const std::vector<pybind11::ssize_t>& shape) {
  namespace py = pybind11;
  std::size_t n = 1;
  for (const auto s : shape) n *= static_cast<std::size_t>(s);
  if (n * sizeof(T) < kCacheMinBytes) return py::array_t<T, py::array::c_style>(shape);
  void* p = cache_alloc(n * sizeof(T));
  py::capsule owner(p, [](void* q) { cache_free(q); });  // from here on the capsule frees p
  return py::array_t<T, py::array::c_style>(shape, static_cast<T*>(p), owner);
}

}  // namespace fastdl
