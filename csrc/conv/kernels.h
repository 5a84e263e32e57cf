// The per-CPU convolution kernel body, written once over a vector type; included by
// kernels_scalar.cpp, kernels_avx2.cpp and kernels_avx512.cpp inside their own namespace
// (fastdl::conv::<isa>), so every instantiation is a distinct symbol compiled for its ISA only.
//
// The including file defines, before including this header, vector traits VF (float) and
// VD (double) with: T, R (register type), W (lanes), VMAX (most vectors per channel-lane
// tile), mmax(v) (tallest tile for v vectors), FLAT_F x FLAT_V (flat tile: channels x
// vectors), DW_F x DW_T (flat weight-gradient tile: channels x taps), zero(), load(p),
// store(p, r), load_n(p, n) / store_n(p, r, n) (first n lanes), set1(t), fma(a, b, c) =
// a*b + c, add(a, b), relu(r) (max(r, 0) with NaN kept and -0 -> +0, as relu_forward),
// transpose(r[W]).  See kernel_table.h for the data layouts.
//
// The body in parts, in the order they build on each other:
//   kernels_pack.h     register transposes, packing, padded planes
//   kernels_gather.h   channel-lane tiles: forward and data gradient (TileJob)
//   kernels_dw.h       channel-lane weight gradient (DwJob)
//   kernels_flat.h     pixel-lane stride-1 convolution (FlatJob)
//   kernels_flat_dw.h  pixel-lane stride-1 weight gradient (FlatDwJob)
//   kernels_sparse.h   weight and data gradients from a max pool's argmax (SparseJob)
// No include guard: each ISA file includes this once, inside its namespace.

#include "kernels_pack.h"
#include "kernels_gather.h"
#include "kernels_dw.h"
#include "kernels_flat.h"
#include "kernels_flat_dw.h"
#include "kernels_sparse.h"

// The table the dispatch (dispatch.cpp) reads.
template <class VT>
void fill_kernels(Kernels<typename VT::T>* k) {
  k->lanes = VT::W;
  k->vmax = VT::VMAX;
  for (int v = 0; v < 8; ++v) k->mmax[v] = v >= 1 && v <= VT::VMAX ? VT::mmax(v) : 0;
  k->tile_group = &tile_group<VT>;
  k->dw_group = &dw_group<VT>;
  k->flat_conv = &flat_conv<VT>;
  k->flat_dw = &flat_dw<VT>;
  k->sparse_backward = &sparse_backward<VT>;
  k->sparse_backward_narrow = nullptr;
  k->same_nout = 0;
}
