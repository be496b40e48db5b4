// Grouped 2-D convolution, dw and db over the forward's tiles, for depthwise and thin groups.   (gconv_edu, "cupy-raw")
// Deterministic: no atomics; the same summation order on every run. Read conv2d_backward_weight.cu first (one block
// per (filter, channel) pair, reducing over all N * H_out * W_out terms): this kernel computes the same sums
//
//     dw[k, c, p, q] = sum_{n, oh, ow} dy[n, k, oh, ow] * x[n, g*in_per_group + c, oh*sh - pad_top + p*dil_h,
//                                                                                 ow*sw - pad_left + q*dil_w]
//     db[k]          = sum_{n, oh, ow} dy[n, k, oh, ow]
//
// in two passes over the tiles of conv2d_tiled_forward.cu:
//   pass 1 (this kernel): ONE BLOCK PER (output tile, filter k), like the tiled forward (blockIdx.x, .y = tile
//     column and row, blockIdx.z = k, a grid-stride loop past 65535). The block loops over the N samples; for each
//     it loads the x tile + halo of each of the group's channels into shared memory (coalesced, the padding as 0),
//     and every thread adds dy * x for its ROWS_PER_THREAD outputs into IN_PER_GROUP * kH * kW + 1 running sums in
//     registers (the last one is db: dy is read once for both). Then the block adds its threads' sums in a fixed
//     tree (warp shuffles, then the warps in order through shared memory) and writes one partial row
//     partial[tile, k, :] = (dw[k, :, :, :] of this tile, db[k] of this tile);
//   pass 2 (the host, cupy): partial.sum(axis=0), the tiles added in a fixed order.
// What it buys over conv2d_backward_weight.cu: x is read from global memory about once per filter (not kH*kW times
// through L1), the block needs no run-time division to find its terms (tile position from blockIdx, every / by a
// compile-time constant), db costs no extra pass over dy, and there are tiles x C_out blocks to fill the GPU even
// for a depthwise layer with few channels.
// Only outputs that exist are summed (edge tiles skip the rest: their dy is absent, and 0 * an inf x would be NaN);
// the padding inside a window is a real 0 and is multiplied (inf dy * 0 = NaN, as in the definition).
//
// Compile-time parameters: as conv2d_tiled_forward.cu (SCALAR_T, INDEX_64BIT, KERNEL_H/W, STRIDE_H/W, DIL_H/W,
// IN_PER_GROUP, OUT_PER_GROUP, BLOCK_SIZE). No #include (NVRTC).

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
#ifndef DIL_H
#define DIL_H 1
#endif
#ifndef DIL_W
#define DIL_W 1
#endif
#ifndef IN_PER_GROUP
#define IN_PER_GROUP 1
#endif
#ifndef OUT_PER_GROUP
#define OUT_PER_GROUP 1
#endif
#ifndef BLOCK_SIZE
#define BLOCK_SIZE 256
#endif
#ifndef TILE_TAPS
#define TILE_TAPS (KERNEL_H * KERNEL_W)
#define TILE_OW 32
#define ROWS_PER_THREAD 4
#define THREAD_ROWS (BLOCK_SIZE / TILE_OW)
#define TILE_OH (THREAD_ROWS * ROWS_PER_THREAD)
#define IN_TILE_H ((TILE_OH - 1) * STRIDE_H + (KERNEL_H - 1) * DIL_H + 1)
#define IN_TILE_W ((TILE_OW - 1) * STRIDE_W + (KERNEL_W - 1) * DIL_W + 1)
#endif
#define TILE_SLOTS (IN_PER_GROUP * TILE_TAPS + 1)  // dw of one filter, then db
#define TILE_WARPS (BLOCK_SIZE / 32)

typedef SCALAR_T scalar_t;
#ifdef INDEX_64BIT
typedef long long index_t;
#else
typedef int index_t;
#endif

extern "C" __global__ void __launch_bounds__(BLOCK_SIZE, 1) gconv_tiled_backward_weight(
    const scalar_t* __restrict__ dy,  // (N, C_out, H_out, W_out), C-contiguous
    const scalar_t* __restrict__ x,   // (N, C_in, H, W)
    scalar_t* __restrict__ partial,   // (tiles = gridDim.y * gridDim.x, C_out, IN_PER_GROUP * kH * kW + 1), written
    const index_t batch, const index_t in_channels, const index_t height, const index_t width,
    const index_t out_channels, const index_t out_h, const index_t out_w,
    const index_t pad_top, const index_t pad_left)
{
    __shared__ scalar_t tile[IN_TILE_H][IN_TILE_W];
    __shared__ scalar_t warp_sums[TILE_WARPS][TILE_SLOTS];

    const int lane = threadIdx.x % TILE_OW;
    const int first_row = (threadIdx.x / TILE_OW) * ROWS_PER_THREAD;
    const index_t oh0 = (index_t)blockIdx.y * TILE_OH;
    const index_t ow0 = (index_t)blockIdx.x * TILE_OW;
    const index_t row0 = oh0 * STRIDE_H - pad_top;
    const index_t col0 = ow0 * STRIDE_W - pad_left;
    const index_t tile_index = (index_t)blockIdx.y * gridDim.x + blockIdx.x;
    const index_t ow = ow0 + lane;

    for (index_t k = blockIdx.z; k < out_channels; k += gridDim.z) {
        const index_t group = k / OUT_PER_GROUP;  // by a constant
        scalar_t acc[TILE_SLOTS];
#pragma unroll
        for (int t = 0; t < TILE_SLOTS; ++t) acc[t] = 0;

        for (index_t n = 0; n < batch; ++n) {
            // This thread's dy values, and whether each output exists (edge tiles).
            const scalar_t* dy_plane = dy + (n * out_channels + k) * out_h * out_w;
            scalar_t grad[ROWS_PER_THREAD];
            bool exists[ROWS_PER_THREAD];
#pragma unroll
            for (int i = 0; i < ROWS_PER_THREAD; ++i) {
                const index_t oh = oh0 + first_row + i;
                exists[i] = oh < out_h && ow < out_w;
                grad[i] = exists[i] ? dy_plane[oh * out_w + ow] : (scalar_t)0;
                acc[TILE_SLOTS - 1] += grad[i];  // db (an absent output adds 0)
            }
#pragma unroll
            for (int c = 0; c < IN_PER_GROUP; ++c) {
                const scalar_t* x_channel = x + (n * in_channels + group * IN_PER_GROUP + c) * height * width;
                for (int e = threadIdx.x; e < IN_TILE_H * IN_TILE_W; e += BLOCK_SIZE) {
                    const int r = e / IN_TILE_W, s = e % IN_TILE_W;
                    const index_t row = row0 + r, col = col0 + s;
                    const bool inside = row >= 0 && row < height && col >= 0 && col < width;
                    tile[r][s] = inside ? x_channel[row * width + col] : (scalar_t)0;
                }
                __syncthreads();
#pragma unroll
                for (int i = 0; i < ROWS_PER_THREAD; ++i) {
                    if (!exists[i]) continue;
#pragma unroll
                    for (int p = 0; p < KERNEL_H; ++p)
#pragma unroll
                        for (int q = 0; q < KERNEL_W; ++q)
                            acc[c * TILE_TAPS + p * KERNEL_W + q] +=
                                grad[i] * tile[(first_row + i) * STRIDE_H + p * DIL_H][lane * STRIDE_W + q * DIL_W];
                }
                __syncthreads();
            }
        }

        // The block's sums, in a fixed tree: 1) within each warp by shuffles, 2) the warps in order.
        const int warp_lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
        for (int t = 0; t < TILE_SLOTS; ++t) {
            scalar_t value = acc[t];
            for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
            if (warp_lane == 0) warp_sums[warp][t] = value;
        }
        __syncthreads();
        for (int t = threadIdx.x; t < TILE_SLOTS; t += BLOCK_SIZE) {
            scalar_t total = 0;
            for (int w = 0; w < TILE_WARPS; ++w) total += warp_sums[w][t];
            partial[(tile_index * out_channels + k) * TILE_SLOTS + t] = total;
        }
        __syncthreads();  // warp_sums is reused by the next filter
    }
}
