/*
 * y = x W^T for a weight W held in groupwise 4-bit form (vqlsp/model/q4.py): every 32
 * consecutive inputs k of an output n share a scale and a minimum, W[n, k] = q * scale + min
 * with q in 0..15 (GGUF's Q4_1, the default base's own format). It reads 0.75 bytes per weight
 * (nibbles + float32 scale and minimum per 32) instead of 4, and dequantizes on the fly;
 * the multiply-adds are float32, as with a float32 weight.
 *
 * Layout, for blocks of 32 outputs nb (N and K multiples of 32):
 *   q      uint8  (N/32, K, 16): byte j of (nb, k) = q[32nb + j, k] | q[32nb + 16 + j, k] << 4
 *   scale  float  (N/32, K/32, 32), minimum likewise: [nb, g, j] for output 32nb + j, group g
 * x (M, K) and y (M, N) are given with row strides in elements (columns contiguous).
 */
#include <stdint.h>

#if defined(__AVX512F__)
#include <immintrin.h>

#define TILE 8   /* rows per register tile: 2 x TILE accumulators + weights fit in 32 zmm */
#define CHUNK 64 /* rows whose inputs stay in L2 while every output block streams past them */

/* A tile of `rows` rows times `blocks` (1 or 2) blocks of 32 outputs, the second block's weights
 * `bs` bytes (and bs / 16 scales) after the first. Each fused multiply-add waits for the previous
 * one into the same register (4 cycles), so with a row or two, one block's 2 x rows chains would
 * leave the FMA units idle: two blocks side by side double the independent chains. */
static inline __attribute__((always_inline)) void block_rows(
    int rows, int blocks, int K, const float *x, int64_t xs, const uint8_t *q, int64_t bs, const float *scale,
    const float *minimum, float *y, int64_t ys)
{
    __m512 acc[TILE][4];
    for (int r = 0; r < TILE; r++) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = _mm512_setzero_ps();
    const __m512i low = _mm512_set1_epi32(15);
    for (int g = 0; g < K / 32; g++) {
        __m512 d[4], m[4];
        for (int b = 0; b < blocks; b++) {
            const float *sb = scale + b * (bs / 16) + g * 32, *mb = minimum + b * (bs / 16) + g * 32;
            d[2 * b] = _mm512_loadu_ps(sb), d[2 * b + 1] = _mm512_loadu_ps(sb + 16);
            m[2 * b] = _mm512_loadu_ps(mb), m[2 * b + 1] = _mm512_loadu_ps(mb + 16);
        }
        for (int kk = 0; kk < 32; kk++) {
            int k = g * 32 + kk;
            __m512 w[4];
            for (int b = 0; b < blocks; b++) {
                __m512i n = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + b * bs + (int64_t)k * 16)));
                w[2 * b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(n, low)), d[2 * b], m[2 * b]);
                w[2 * b + 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(n, 4)), d[2 * b + 1], m[2 * b + 1]);
            }
#pragma GCC unroll 8
            for (int r = 0; r < TILE; r++) {
                if (r < rows) {
                    __m512 xv = _mm512_set1_ps(x[r * xs + k]);
                    for (int j = 0; j < 2 * blocks; j++) acc[r][j] = _mm512_fmadd_ps(xv, w[j], acc[r][j]);
                }
            }
        }
    }
    for (int r = 0; r < rows; r++)
        for (int b = 0; b < blocks; b++) {  /* the second block's outputs are 32 columns on */
            _mm512_storeu_ps(y + r * ys + 32 * b, acc[r][2 * b]);
            _mm512_storeu_ps(y + r * ys + 32 * b + 16, acc[r][2 * b + 1]);
        }
}

/* one specialisation per tile height (and width), so that `rows` is a constant and the tile stays in registers */
#define ROWS(n, w) static void rows_##n##_##w(int K, const float *x, int64_t xs, const uint8_t *q, int64_t bs, \
        const float *s, const float *m, float *y, int64_t ys) { block_rows(n, w, K, x, xs, q, bs, s, m, y, ys); }
ROWS(1, 1) ROWS(2, 1) ROWS(3, 1) ROWS(4, 1) ROWS(5, 1) ROWS(6, 1) ROWS(7, 1) ROWS(8, 1) ROWS(1, 2) ROWS(2, 2)
typedef void (*rows_fn)(int, const float *, int64_t, const uint8_t *, int64_t, const float *, const float *, float *,
                        int64_t);
static const rows_fn BY_ROWS[TILE + 1] = {0, rows_1_1, rows_2_1, rows_3_1, rows_4_1, rows_5_1, rows_6_1, rows_7_1,
                                          rows_8_1};
#define WIDE_ROWS 2 /* up to this many rows, two output blocks at a time */
static const rows_fn WIDE[WIDE_ROWS + 1] = {0, rows_1_2, rows_2_2};

void vqlsp_q4_matmul(int M, int N, int K, const float *x, int64_t xs, const uint8_t *q, const float *scale,
                     const float *minimum, float *y, int64_t ys)
{
    const int64_t bs = (int64_t)K * 16;  /* bytes of one block's nibbles; its scales are K floats */
    if (M <= WIDE_ROWS) {
        int nb = 0;
        for (; nb + 1 < N / 32; nb += 2)
            WIDE[M](K, x, xs, q + nb * bs, bs, scale + nb * (int64_t)K, minimum + nb * (int64_t)K, y + nb * 32, ys);
        if (nb < N / 32)
            BY_ROWS[M](K, x, xs, q + nb * bs, bs, scale + nb * (int64_t)K, minimum + nb * (int64_t)K, y + nb * 32, ys);
        return;
    }
    /* a chunk of rows stays in L2 while the weights stream past it once; within it, a block's
     * weights (16 K bytes + scales) stay in L1 over all its row tiles */
    for (int c0 = 0; c0 < M; c0 += CHUNK) {
        int c1 = M - c0 < CHUNK ? M : c0 + CHUNK;
        for (int nb = 0; nb < N / 32; nb++) {
            const uint8_t *qb = q + nb * bs;
            const float *sb = scale + (int64_t)nb * K, *mb = minimum + (int64_t)nb * K;
            for (int m0 = c0; m0 < c1; m0 += TILE) {
                int rows = c1 - m0 < TILE ? c1 - m0 : TILE;
                BY_ROWS[rows](K, x + m0 * xs, xs, qb, bs, sb, mb, y + m0 * ys + nb * 32, ys);
            }
        }
    }
}

#else  /* portable fallback: the same arithmetic, one output at a time */

void vqlsp_q4_matmul(int M, int N, int K, const float *x, int64_t xs, const uint8_t *q, const float *scale,
                     const float *minimum, float *y, int64_t ys)
{
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            int nb = n / 32, j = n % 32, shift = j < 16 ? 0 : 4, lane = j % 16;
            const uint8_t *qb = q + (int64_t)nb * K * 16;
            const float *sb = scale + (int64_t)nb * K, *mb = minimum + (int64_t)nb * K;
            float acc = 0;
            for (int k = 0; k < K; k++) {
                float w = (float)((qb[(int64_t)k * 16 + lane] >> shift) & 15) * sb[(k / 32) * 32 + j]
                          + mb[(k / 32) * 32 + j];
                acc += x[m * xs + k] * w;
            }
            y[m * ys + n] = acc;
        }
    }
}

#endif
