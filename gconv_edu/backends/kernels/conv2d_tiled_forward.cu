// Grouped 2-D convolution, forward, TILED: for depthwise and thin groups.   (gconv_edu, backend "cupy-raw")
// Read conv2d_forward.cu first: it computes the same y = conv2d(x, weight) + bias with one thread per output. This
// kernel is the same sum, reorganised so that each input value is read from global memory about once.
//
//     y[n, k, oh, ow] = bias[k] + sum_{c < in_per_group} sum_{p < kH} sum_{q < kW}
//         weight[k, c, p, q] * x[n, g*in_per_group + c, oh*sh - pad_top + p*dil_h, ow*sw - pad_left + q*dil_w]
//
// Block -> element mapping
// ------------------------
// ONE BLOCK PER (output tile, filter k): blockIdx.x, blockIdx.y = the tile's column and row, blockIdx.z = k (a
// grid-stride loop over k past 65535). A tile is TILE_OH x TILE_OW = 32 x 32 outputs; the block loops over the N
// samples. Thread t computes ROWS_PER_THREAD = 4 consecutive output rows of column (t % 32) of the tile.
//
// What each step buys (the simple kernel reads every input kH*kW times, through L1 at best):
//   1) the input tile and its halo ((TILE_OH-1)*sh + (kH-1)*dil_h + 1 rows, likewise columns) are copied to shared
//      memory once per (sample, channel), by all threads, consecutive threads reading consecutive addresses
//      (coalesced); every tap then reads shared memory (a few cycles) instead of global memory;
//   2) the window's weights, IN_PER_GROUP x kH x kW values, sit in registers, loaded once per filter and reused for
//      all N samples and all outputs of the tile;
//   3) several outputs per thread: the 4 windows of one thread overlap in kH - 1 rows; with the loops unrolled the
//      compiler sees the same shared address and loads it once (fewer shared loads per multiply-add);
//   4) no run-time division: the filter size, stride, dilation, channels per group and tile sizes are compile-time
//      constants (-D), so every / and % below is by a constant (a shift or a multiply); the simple kernel does six
//      run-time divisions per output to undo its flat index;
//   5) __launch_bounds__(BLOCK_SIZE, 1): ptxas keeps the registers within what BLOCK_SIZE threads can have (see
//      conv2d_forward.cu); the weights in registers stop at 64 per thread (cupy_gpu.TILED_MAX_REGISTER_VALUES),
//      which 7x7 depthwise (49) and 4 channels x 3x3 (36) fit without spills (tests/test_kernels_compile.py).
// The padding is read as 0 when the tile is loaded, and every tap is multiplied: inf * 0 = NaN as in the definition.
//
// The same kernel computes dx for stride 1 (cupy_gpu.tiled_backward_input_launch): dx is the convolution of dy,
// zero-extended by dil*(k-1) - pad, with the flipped filter, channels transposed within each group:
//     dx[n, g*in_per_group + c] = sum_j  dy[n, g*out_per_group + j]  (*)  weight[g*out_per_group + j, c, ::-1, ::-1]
// There, a position outside dy is no output at all (absent from the definition's sum, not a zero that inf * 0 turns
// into NaN): ABSENT_OUTSIDE makes the kernel skip those taps instead of multiplying them.
//
// Compile-time parameters (cupy_gpu.py passes them with -D; the defaults let you compile this file alone):
//   SCALAR_T, INDEX_64BIT, KERNEL_H, KERNEL_W, STRIDE_H, STRIDE_W as in conv2d_forward.cu; DIL_H, DIL_W (dil_h,
//   dil_w: they size the shared tile); IN_PER_GROUP, OUT_PER_GROUP (channels per group, input and output);
//   BLOCK_SIZE (threads per block: 32 * TILE_OH / ROWS_PER_THREAD); ABSENT_OUTSIDE (the dx use, above).
// No #include: NVRTC has no host headers.

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
#define TILE_OW 32                                 // one warp across a tile row: coalesced stores of y
#define ROWS_PER_THREAD 4                          // outputs per thread, consecutive rows
#define THREAD_ROWS (BLOCK_SIZE / TILE_OW)         // 8 rows of threads
#define TILE_OH (THREAD_ROWS * ROWS_PER_THREAD)    // 32 output rows per tile
#define IN_TILE_H ((TILE_OH - 1) * STRIDE_H + (KERNEL_H - 1) * DIL_H + 1)  // input rows the tile's windows read
#define IN_TILE_W ((TILE_OW - 1) * STRIDE_W + (KERNEL_W - 1) * DIL_W + 1)
#endif

typedef SCALAR_T scalar_t;
#ifdef INDEX_64BIT
typedef long long index_t;
#else
typedef int index_t;
#endif

extern "C" __global__ void __launch_bounds__(BLOCK_SIZE, 1) gconv_tiled_forward(
    const scalar_t* __restrict__ x,       // (N, C_in, H, W), C-contiguous
    const scalar_t* __restrict__ weight,  // (C_out, IN_PER_GROUP, KERNEL_H, KERNEL_W)
    const scalar_t* __restrict__ bias,    // (C_out,): zeros when the layer has no bias
    scalar_t* __restrict__ y,             // (N, C_out, H_out, W_out), written
    const index_t batch, const index_t in_channels, const index_t height, const index_t width,
    const index_t out_channels, const index_t out_h, const index_t out_w,
    const index_t pad_top, const index_t pad_left)
{
    __shared__ scalar_t tile[IN_TILE_H][IN_TILE_W];

    const int lane = threadIdx.x % TILE_OW;                           // the tile column this thread computes
    const int first_row = (threadIdx.x / TILE_OW) * ROWS_PER_THREAD;  // its first tile row
    const index_t oh0 = (index_t)blockIdx.y * TILE_OH;                // the tile's first output row and column
    const index_t ow0 = (index_t)blockIdx.x * TILE_OW;
    const index_t row0 = oh0 * STRIDE_H - pad_top;  // input position of the tile's top-left tap (may be padding)
    const index_t col0 = ow0 * STRIDE_W - pad_left;

    for (index_t k = blockIdx.z; k < out_channels; k += gridDim.z) {
        const index_t group = k / OUT_PER_GROUP;  // by a constant

        // 2) The filter's weights in registers (fully unrolled loops index them with constants).
        scalar_t w[IN_PER_GROUP][TILE_TAPS];
#pragma unroll
        for (int c = 0; c < IN_PER_GROUP; ++c)
#pragma unroll
            for (int t = 0; t < TILE_TAPS; ++t) w[c][t] = weight[(k * IN_PER_GROUP + c) * TILE_TAPS + t];

        for (index_t n = 0; n < batch; ++n) {
            scalar_t acc[ROWS_PER_THREAD];
#pragma unroll
            for (int i = 0; i < ROWS_PER_THREAD; ++i) acc[i] = bias[k];

#pragma unroll
            for (int c = 0; c < IN_PER_GROUP; ++c) {
                const scalar_t* x_channel = x + (n * in_channels + group * IN_PER_GROUP + c) * height * width;
                // 1) Tile + halo into shared memory; the padding (and anything past the input) reads 0.
                for (int e = threadIdx.x; e < IN_TILE_H * IN_TILE_W; e += BLOCK_SIZE) {
                    const int r = e / IN_TILE_W, s = e % IN_TILE_W;  // by constants
                    const index_t row = row0 + r, col = col0 + s;
                    const bool inside = row >= 0 && row < height && col >= 0 && col < width;
                    tile[r][s] = inside ? x_channel[row * width + col] : (scalar_t)0;
                }
                __syncthreads();  // the tile is complete before anyone reads it

                // 3) ROWS_PER_THREAD outputs, every tap multiplied (the padding is a real 0 in the tile).
#pragma unroll
                for (int i = 0; i < ROWS_PER_THREAD; ++i) {
#pragma unroll
                    for (int p = 0; p < KERNEL_H; ++p) {
                        const int r = (first_row + i) * STRIDE_H + p * DIL_H;
#ifdef ABSENT_OUTSIDE
                        if (row0 + r < 0 || row0 + r >= height) continue;  // no such dy row: absent, not zero
#endif
#pragma unroll
                        for (int q = 0; q < KERNEL_W; ++q) {
                            const int s = lane * STRIDE_W + q * DIL_W;
#ifdef ABSENT_OUTSIDE
                            if (col0 + s < 0 || col0 + s >= width) continue;
#endif
                            acc[i] += tile[r][s] * w[c][p * KERNEL_W + q];
                        }
                    }
                }
                __syncthreads();  // everyone is done with the tile before the next channel overwrites it
            }

            const index_t ow = ow0 + lane;
            scalar_t* y_plane = y + (n * out_channels + k) * out_h * out_w;
#pragma unroll
            for (int i = 0; i < ROWS_PER_THREAD; ++i) {
                const index_t oh = oh0 + first_row + i;
                if (oh < out_h && ow < out_w) y_plane[oh * out_w + ow] = acc[i];  // edge tiles: part is outside
            }
        }
    }
}
