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

#define TILE 8  /* rows per register tile: 2 x TILE accumulators + weights fit in 32 zmm */

static inline __attribute__((always_inline)) void block_rows(
    int rows, int K, const float *x, int64_t xs, const uint8_t *q, const float *scale,
    const float *minimum, float *y, int64_t ys)
{
    __m512 acc[TILE][2];
    for (int r = 0; r < TILE; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    const __m512i low = _mm512_set1_epi32(15);
    for (int g = 0; g < K / 32; g++) {
        __m512 d0 = _mm512_loadu_ps(scale + g * 32), d1 = _mm512_loadu_ps(scale + g * 32 + 16);
        __m512 m0 = _mm512_loadu_ps(minimum + g * 32), m1 = _mm512_loadu_ps(minimum + g * 32 + 16);
        for (int kk = 0; kk < 32; kk++) {
            int k = g * 32 + kk;
            __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + (int64_t)k * 16)));
            __m512 w0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(b, low)), d0, m0);
            __m512 w1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(b, 4)), d1, m1);
#pragma GCC unroll 8
            for (int r = 0; r < TILE; r++) {
                if (r < rows) {
                    __m512 xv = _mm512_set1_ps(x[r * xs + k]);
                    acc[r][0] = _mm512_fmadd_ps(xv, w0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(xv, w1, acc[r][1]);
                }
            }
        }
    }
    for (int r = 0; r < rows; r++) {
        _mm512_storeu_ps(y + r * ys, acc[r][0]);
        _mm512_storeu_ps(y + r * ys + 16, acc[r][1]);
    }
}

/* one specialisation per tile height, so that `rows` is a constant and the tile stays in registers */
#define ROWS(n) static void rows_##n(int K, const float *x, int64_t xs, const uint8_t *q, const float *s, \
                                     const float *m, float *y, int64_t ys) { block_rows(n, K, x, xs, q, s, m, y, ys); }
ROWS(1) ROWS(2) ROWS(3) ROWS(4) ROWS(5) ROWS(6) ROWS(7) ROWS(8)
typedef void (*rows_fn)(int, const float *, int64_t, const uint8_t *, const float *, const float *, float *, int64_t);
static const rows_fn BY_ROWS[TILE + 1] = {0, rows_1, rows_2, rows_3, rows_4, rows_5, rows_6, rows_7, rows_8};

void vqlsp_q4_matmul(int M, int N, int K, const float *x, int64_t xs, const uint8_t *q, const float *scale,
                     const float *minimum, float *y, int64_t ys)
{
    for (int nb = 0; nb < N / 32; nb++) {  /* a block's weights (16 K bytes + scales) stay in L1 over all rows */
        const uint8_t *qb = q + (int64_t)nb * K * 16;
        const float *sb = scale + (int64_t)nb * K, *mb = minimum + (int64_t)nb * K;
        for (int m0 = 0; m0 < M; m0 += TILE) {
            int rows = M - m0 < TILE ? M - m0 : TILE;
            BY_ROWS[rows](K, x + m0 * xs, xs, qb, sb, mb, y + m0 * ys + nb * 32, ys);
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
