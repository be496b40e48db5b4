// LESSON CONTRAST, not used by default: dw with atomicAdd.   (gconv_edu; the default is conv2d_backward_weight.cu)
//
// Thread -> element mapping
// -------------------------
// ONE THREAD PER OUTPUT-GRADIENT ELEMENT dy[n, k, oh, ow], flat index
//
//     idx = ((n * C_out + k) * H_out + oh) * W_out + ow.
//
// This is the forward pass run backwards: the thread that owns an output adds  dy * x  into every weight of its
// filter:
//     dw[k, c, p, q] += dy[n, k, oh, ow] * x[n, g*(C_in/G) + c, oh*sh - pad_top + p*dil_h, ow*sw - pad_left + q*dil_w].
// Thousands of threads add into the same few weights at once, so every add must be an atomicAdd.
//
// Why it is not the default:
//   * the order in which the atomics land changes from run to run, and floating-point addition is not associative,
//     so dw differs in its last bits between two identical calls (not deterministic);
//   * all threads of a warp usually share k and hit the same addresses, so the atomics serialise.
// The default kernel gathers instead (one block per (k, c) pair, a fixed reduction tree).
//
// dw must be zeroed before the launch. Compile-time parameters as in the other kernels: SCALAR_T, INDEX_64BIT,
// KERNEL_H, KERNEL_W, STRIDE_H, STRIDE_W. atomicAdd on double needs compute capability >= 6.0. No #include (NVRTC).

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

typedef SCALAR_T scalar_t;
#ifdef INDEX_64BIT
typedef long long index_t;
#else
typedef int index_t;
#endif

extern "C" __global__ void gconv_backward_weight_atomic(
    const scalar_t* __restrict__ dy,  // (N, C_out, H_out, W_out), C-contiguous
    const scalar_t* __restrict__ x,   // (N, C_in, H, W)
    scalar_t* __restrict__ dw,        // (C_out, C_in/G, KERNEL_H, KERNEL_W), zeroed, accumulated into
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
        // Undo idx = ((n * C_out + k) * H_out + oh) * W_out + ow.
        const index_t ow = idx % out_w;
        index_t rest = idx / out_w;
        const index_t oh = rest % out_h;
        rest /= out_h;
        const index_t k = rest % out_channels;
        const index_t n = rest / out_channels;
        const index_t group = k / out_per_group;
        const scalar_t grad = dy[idx];
        const scalar_t* x_group = x + (n * in_channels + group * in_per_group) * height * width;
        scalar_t* dw_filter = dw + k * in_per_group * taps;
        const index_t row0 = oh * STRIDE_H - pad_top;
        const index_t col0 = ow * STRIDE_W - pad_left;
        for (index_t c = 0; c < in_per_group; ++c) {
#pragma unroll
            for (int p = 0; p < KERNEL_H; ++p) {
                const index_t row = row0 + p * dil_h;
                const bool row_inside = row >= 0 && row < height;
#pragma unroll
                for (int q = 0; q < KERNEL_W; ++q) {
                    const index_t col = col0 + q * dil_w;
                    // The padding reads 0 and is added all the same (inf * 0 = NaN, as in the definition).
                    const scalar_t value =
                        row_inside && col >= 0 && col < width ? x_group[(c * height + row) * width + col] : 0;
                    atomicAdd(&dw_filter[c * taps + p * KERNEL_W + q], grad * value);
                }
            }
        }
    }
}
