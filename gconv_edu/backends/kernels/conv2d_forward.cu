// Grouped 2-D convolution, forward pass: y = conv2d(x, weight) + bias.   (gconv_edu, backend "cupy-raw")
//
// Thread -> element mapping
// -------------------------
// ONE THREAD PER OUTPUT ELEMENT y[n, k, oh, ow]. The flat index of that element,
//
//     idx = ((n * C_out + k) * H_out + oh) * W_out + ow,
//
// is the thread's global id. ow varies fastest, so the 32 threads of a warp write 32 neighbouring outputs
// (one coalesced store) and read neighbouring inputs (STRIDE_W apart). A grid-stride loop lets a grid smaller than
// the output cover all of it.
//
// Each thread computes one dot product over its filter's group only:
//
//     y[n, k, oh, ow] = bias[k] + sum_{c < C_in/G} sum_{p < kH} sum_{q < kW}
//         weight[k, c, p, q] * x[n, g*(C_in/G) + c, oh*sh - pad_top + p*dil_h, ow*sw - pad_left + q*dil_w]
//
// where g = k / (C_out/G) is the filter's group. Taps over the padding read 0 and are multiplied like the others (so
// an inf weight there gives inf * 0 = NaN, as the definition does; no host-side check of the weights is needed).
// Output size: H_out = (H + pad_top + pad_bottom - dil_h*(kH - 1) - 1) / sh + 1 (integer division), likewise W_out.
//
// Compile-time parameters (cupy_gpu.py passes them with -D; the defaults let you compile this file alone):
//   SCALAR_T            float or double
//   INDEX_64BIT         defined when an array has too many elements for 32-bit indices (see cupy_gpu.index_dtype)
//   KERNEL_H, KERNEL_W  the filter size: fixed at compile time so the compiler fully unrolls the tap loops
//   STRIDE_H, STRIDE_W  the stride (sh, sw above), also fixed: multiplying by a constant is cheaper
//   BLOCK_SIZE          threads per block (the launch's). __launch_bounds__(BLOCK_SIZE, 1) promises ptxas at most
//                       BLOCK_SIZE threads per block, one block per SM at least: it may then use up to 255 registers
//                       per thread and never more than such a launch can have (a launch can never fail for lack of
//                       registers). The ", 1" matters: with the first argument alone ptxas 13 picked lower register
//                       targets and spilled (dx 3x3, 64-bit indices, sm_80: 8 bytes).
// No #include: NVRTC (which CuPy uses) has no host headers.

#ifndef SCALAR_T
#define SCALAR_T float
#endif
#ifndef KERNEL_H
#define KERNEL_H 3
#endif
#ifndef KERNEL_W
#define KERNEL_W 3
#endif
#ifndef STRIDE_H
#define STRIDE_H 1
#endif
#ifndef STRIDE_W
#define STRIDE_W 1
#endif
#ifndef BLOCK_SIZE
#define BLOCK_SIZE 256
#endif

typedef SCALAR_T scalar_t;
#ifdef INDEX_64BIT
typedef long long index_t;
#else
typedef int index_t;
#endif

extern "C" __global__ void __launch_bounds__(BLOCK_SIZE, 1) gconv_forward(
    const scalar_t* __restrict__ x,       // (N, C_in, H, W), C-contiguous
    const scalar_t* __restrict__ weight,  // (C_out, C_in/G, KERNEL_H, KERNEL_W)
    const scalar_t* __restrict__ bias,    // (C_out,): zeros when the layer has no bias
    scalar_t* __restrict__ y,             // (N, C_out, H_out, W_out), written
    const index_t batch, const index_t in_channels, const index_t height, const index_t width,
    const index_t out_channels, const index_t out_h, const index_t out_w,
    const index_t in_per_group, const index_t out_per_group,
    const index_t pad_top, const index_t pad_left,
    const index_t dil_h, const index_t dil_w)
{
    const index_t taps = KERNEL_H * KERNEL_W;
    const index_t total = batch * out_channels * out_h * out_w;
    const index_t step = (index_t)blockDim.x * (index_t)gridDim.x;
    for (index_t idx = (index_t)blockIdx.x * (index_t)blockDim.x + (index_t)threadIdx.x; idx < total; idx += step) {
        // Undo idx = ((n * C_out + k) * H_out + oh) * W_out + ow: one division per level (the compiler gets each
        // remainder from the same division), integer division by a run-time value being the costly step here.
        const index_t ow = idx % out_w;
        index_t rest = idx / out_w;  // (n * C_out + k) * H_out + oh
        const index_t oh = rest % out_h;
        rest /= out_h;  // n * C_out + k
        const index_t k = rest % out_channels;
        const index_t n = rest / out_channels;
        const index_t group = k / out_per_group;

        // The group's first input channel for this sample, and this filter's weights.
        const scalar_t* x_group = x + (n * in_channels + group * in_per_group) * height * width;
        const scalar_t* w_filter = weight + k * in_per_group * taps;
        const index_t row0 = oh * STRIDE_H - pad_top;  // top-left corner of the window, may be in the padding
        const index_t col0 = ow * STRIDE_W - pad_left;

        scalar_t acc = bias[k];
        for (index_t c = 0; c < in_per_group; ++c) {
            const scalar_t* x_channel = x_group + c * height * width;
            const scalar_t* w_channel = w_filter + c * taps;
            // Up to 3x3: every tap unrolled (constant offsets, loads in flight together). Larger: one row of
            // taps at a time, or the compiler hoists all kH*kW loads at once and runs out of registers (spills to
            // local memory from 5x5 on with sm_90 doubles; tests/test_kernels_compile.py checks).
#if KERNEL_H * KERNEL_W > 9
#pragma unroll 1
#else
#pragma unroll
#endif
            for (int p = 0; p < KERNEL_H; ++p) {
                const index_t row = row0 + p * dil_h;
                const bool row_inside = row >= 0 && row < height;
#pragma unroll
                for (int q = 0; q < KERNEL_W; ++q) {
                    const index_t col = col0 + q * dil_w;
                    // A tap over the padding reads 0 (a predicated load, no branch) and is multiplied all the same:
                    // weight * 0 is 0, except inf * 0 = NaN, exactly as in the definition on the zero-padded input.
                    const scalar_t value = row_inside && col >= 0 && col < width ? x_channel[row * width + col] : 0;
                    acc += value * w_channel[p * KERNEL_W + q];
                }
            }
        }
        y[idx] = acc;
    }
}
