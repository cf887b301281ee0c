/*
 * The nearest code of each (row, head) and its margin (vqlsp/model/vq.py, nearest_codes), in
 * one pass: PyTorch needs an einsum, two squared norms, a broadcast sum, a clamp, a top-2 and
 * a square root, each a separate pass over small (rows, heads, codes) temporaries. Same
 * formula, float32:
 *
 *   d2_k   = max(0, ||x||^2 - 2 x.c_k + ||c_k||^2)
 *   code   = argmin_k d2_k (the first of equal ones)
 *   margin = (sqrt(second smallest d2) - sqrt(smallest d2)) / 2   (inf with one code)
 *
 * Each row's result depends on that row alone (not on how many rows are searched at once), so
 * the dense forward and the incremental engine, which search different row sets, agree.
 * x (N, H, Dh) is given by pointer and strides in elements (Dh contiguous); codebook (H, K, Dh)
 * contiguous; codes (N, H) int64 and margins (N, H) float are written. Returns 0, or -1 when
 * its scratch could not be allocated.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__AVX512F__)
#define VW 16 /* floats per vector */
#else
#define VW 8
#endif
typedef float vec __attribute__((vector_size(VW * 4)));

#define ROWS 8 /* rows of one head that share each load of the transposed codebook */

static void search_rows(int rows, int K, int Kp, int Dh, const float *const *x, const float *restrict ct,
                        const float *restrict cc, float *restrict dot, int64_t *const *codes, float *const *margins)
{
    for (int kb = 0; kb < Kp; kb += VW) { /* VW codes at a time, the rows' sums in registers over d */
        vec acc[ROWS];
        for (int r = 0; r < ROWS; r++) acc[r] = (vec){0};
        for (int d = 0; d < Dh; d++) {
            vec c = *(const vec *)(ct + (int64_t)d * Kp + kb);
            for (int r = 0; r < ROWS; r++) acc[r] += c * x[r][d];
        }
        for (int r = 0; r < ROWS; r++) *(vec *)(dot + r * Kp + kb) = acc[r];
    }
    for (int r = 0; r < rows; r++) {
        float xx = 0;
        for (int d = 0; d < Dh; d++) xx += x[r][d] * x[r][d];
        float best = INFINITY, second = INFINITY;
        int64_t code = 0;
        for (int k = 0; k < K; k++) {
            float d2 = xx - 2 * dot[r * Kp + k] + cc[k];
            d2 = d2 > 0 ? d2 : 0;
            if (d2 < best) {
                second = best, best = d2, code = k;
            } else if (d2 < second) {
                second = d2;
            }
        }
        *codes[r] = code;
        *margins[r] = (sqrtf(second) - sqrtf(best)) / 2;
    }
}

int vqlsp_nearest_codes(int N, int H, int K, int Dh, const float *x, int64_t x_sn, int64_t x_sh,
                        const float *codebook, int64_t *codes, float *margins)
{
    int Kp = (K + VW - 1) / VW * VW;
    /* scratch: the codebook transposed (H, Dh, Kp), its squared norms (H, Kp), dot products (ROWS, Kp) */
    size_t floats = (size_t)H * Dh * Kp + (size_t)H * Kp + (size_t)ROWS * Kp;
    float *scratch = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
    if (!scratch) return -1;
    float *ct = scratch, *cc = ct + (size_t)H * Dh * Kp, *dot = cc + (size_t)H * Kp;
    for (int h = 0; h < H; h++)
        for (int k = 0; k < Kp; k++) {
            float norm = 0;
            for (int d = 0; d < Dh; d++) {
                float c = k < K ? codebook[((int64_t)h * K + k) * Dh + d] : 0;
                ct[((size_t)h * Dh + d) * Kp + k] = c;
                norm += c * c;
            }
            cc[(size_t)h * Kp + k] = norm;
        }
    for (int h = 0; h < H; h++) {
        for (int n0 = 0; n0 < N; n0 += ROWS) {
            int rows = N - n0 < ROWS ? N - n0 : ROWS;
            const float *xr[ROWS];
            int64_t *cr[ROWS];
            float *mr[ROWS];
            for (int r = 0; r < ROWS; r++) { /* a short tile repeats its last row, written once */
                int64_t n = n0 + (r < rows ? r : rows - 1);
                xr[r] = x + n * x_sn + h * x_sh;
                cr[r] = codes + n * H + h;
                mr[r] = margins + n * H + h;
            }
            search_rows(rows, K, Kp, Dh, xr, ct + (size_t)h * Dh * Kp, cc + (size_t)h * Kp, dot, cr, mr);
        }
    }
    free(scratch);
    return 0;
}
