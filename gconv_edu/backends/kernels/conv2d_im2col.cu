// im2col and col2im for backend "cupy": the columns of the grouped GEMM, written by one kernel each.   (gconv_edu)
// The CPU version (backends/im2col.py) builds the columns with one strided copy per kernel tap: kH*kW copies (and as
// many launches on a GPU: about 75 per call for 5x5 with the backward). Here one launch writes them all, straight
// into the layout the batched GEMM reads, and one launch gathers them back for dx.
//
// The column matrix of a chunk of `batch` samples, row-major, (C_in * kH * kW, batch * H_out * W_out):
//
//     cols[(ci*kH + p)*kW + q, (n*H_out + oh)*W_out + ow] = x[n, ci, oh*sh - pad_top + p*dil_h, ow*sw - pad_left + q*dil_w]
//
// (0 where that position is padding). Row ci*kH*kW + t belongs to group g = ci / in_per_group, so viewed as
// (G, in_per_group*kH*kW, batch*H_out*W_out) it is the right-hand side of (G, out_per_group, M) = W_g @ cols_g.
//
// gconv_im2col: ONE THREAD PER COLUMN ELEMENT, flat index idx = row * M + m (m fastest: consecutive threads write
//   consecutive addresses and, for stride 1, read consecutive inputs). The padding is written as a real 0, so the
//   GEMM multiplies it: inf * 0 = NaN as in the definition.
// gconv_col2im: ONE THREAD PER INPUT ELEMENT dx[n, ci, row, col]: it gathers the column entries that copied this
//   pixel (the taps whose output exists, as in conv2d_backward_input.cu), so no atomics and the same bits every run:
//     dx[n, ci, row, col] = sum over (p, q) with an output (oh, ow) of dcols[(ci*kH + p)*kW + q, (n*H_out + oh)*W_out + ow]
//
// Compile-time parameters: SCALAR_T, INDEX_64BIT, KERNEL_H, KERNEL_W, STRIDE_H, STRIDE_W, BLOCK_SIZE, as in
// conv2d_forward.cu. The divisions by H_out, W_out and M are at run time (one set per element, as the simple
// kernels); those by kH*kW, kW and the stride are by constants. No #include (NVRTC).

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

extern "C" __global__ void __launch_bounds__(BLOCK_SIZE, 1) gconv_im2col(
    const scalar_t* __restrict__ x,  // (batch, C_in, H, W), C-contiguous: the chunk's samples
    scalar_t* __restrict__ cols,     // (C_in * KERNEL_H * KERNEL_W, batch * H_out * W_out), written
    const index_t batch, const index_t in_channels, const index_t height, const index_t width,
    const index_t out_h, const index_t out_w, const index_t pad_top, const index_t pad_left,
    const index_t dil_h, const index_t dil_w)
{
    const index_t pixels = out_h * out_w;
    const index_t columns = batch * pixels;  // M
    const index_t total = in_channels * KERNEL_H * KERNEL_W * columns;
    const index_t step = (index_t)blockDim.x * (index_t)gridDim.x;
    for (index_t idx = (index_t)blockIdx.x * (index_t)blockDim.x + (index_t)threadIdx.x; idx < total; idx += step) {
        const index_t row = idx / columns, m = idx - row * columns;
        const index_t ci = row / (KERNEL_H * KERNEL_W);  // by constants from here on
        const int tap = (int)(row - ci * (KERNEL_H * KERNEL_W));
        const int p = tap / KERNEL_W, q = tap % KERNEL_W;
        const index_t n = m / pixels, pixel = m - n * pixels;
        const index_t oh = pixel / out_w, ow = pixel - oh * out_w;
        const index_t in_row = oh * STRIDE_H - pad_top + p * dil_h;
        const index_t in_col = ow * STRIDE_W - pad_left + q * dil_w;
        const bool inside = in_row >= 0 && in_row < height && in_col >= 0 && in_col < width;
        cols[idx] = inside ? x[((n * in_channels + ci) * height + in_row) * width + in_col] : (scalar_t)0;
    }
}

extern "C" __global__ void __launch_bounds__(BLOCK_SIZE, 1) gconv_col2im(
    const scalar_t* __restrict__ dcols,  // (C_in * KERNEL_H * KERNEL_W, batch * H_out * W_out)
    scalar_t* __restrict__ dx,           // (batch, C_in, H, W), written
    const index_t batch, const index_t in_channels, const index_t height, const index_t width,
    const index_t out_h, const index_t out_w, const index_t pad_top, const index_t pad_left,
    const index_t dil_h, const index_t dil_w)
{
    const index_t pixels = out_h * out_w;
    const index_t columns = batch * pixels;
    const index_t total = batch * in_channels * height * width;
    const index_t step = (index_t)blockDim.x * (index_t)gridDim.x;
    for (index_t idx = (index_t)blockIdx.x * (index_t)blockDim.x + (index_t)threadIdx.x; idx < total; idx += step) {
        const index_t col = idx % width;
        index_t rest = idx / width;
        const index_t row = rest % height;
        rest /= height;
        const index_t ci = rest % in_channels;
        const index_t n = rest / in_channels;
        const scalar_t* dcols_channel = dcols + ci * (KERNEL_H * KERNEL_W) * columns + n * pixels;
        scalar_t acc = 0;
        for (int p = 0; p < KERNEL_H; ++p) {  // rolled: the registers stay few for any filter size
            const index_t shifted_row = row + pad_top - p * dil_h;  // = oh * sh for the output that read it
            if (shifted_row < 0 || shifted_row % STRIDE_H != 0 || shifted_row / STRIDE_H >= out_h) continue;
            const index_t oh = shifted_row / STRIDE_H;
#pragma unroll
            for (int q = 0; q < KERNEL_W; ++q) {
                const index_t shifted_col = col + pad_left - q * dil_w;
                if (shifted_col < 0 || shifted_col % STRIDE_W != 0 || shifted_col / STRIDE_W >= out_w) continue;
                acc += dcols_channel[(p * KERNEL_W + q) * columns + oh * out_w + shifted_col / STRIDE_W];
            }
        }
        dx[idx] = acc;
    }
}
