/*
 * The element-wise parts of the tail's accumulator update (vqlsp/engine/attention.py,
 * update_rows_), fused. PyTorch runs them as about a dozen separate passes over
 * (heads, rows, keys) and (heads, rows, d_head) temporaries; here each is one pass,
 * around the two batched matmuls that stay with BLAS (scores = q k^T, delta = coef v).
 * Same algebra, float32, summation order aside.
 *
 * vqlsp_weights: scores (H, U, J) contiguous, q.k/sqrt(Dh), are turned in place into
 *   coefficients c_j = sign_j exp(score_j - lse) / total for the keys that count for the
 *   row (key_coord[j] < row_coord[u]), 0 for the others; total (H, U) = the new mass
 *   over the old; flag (H, U): 0 no key counts, 1 update, 2 cancelled (recompute in full).
 * vqlsp_apply: o' = o + delta + o (1/total - 1) and lse' = lse + log(total) for flag 1;
 *   moved (H, U) = ||o' - o|| (0 for the other flags, whose rows are left as they were).
 * o and lse are given by pointer and strides in elements (Dh contiguous).
 */
#include <math.h>
#include <stdint.h>

/* weights below e^-87 (float32's smallest normal) are taken as e^-87: no weight that
   matters changes, and the vectorized exp() never leaves its fast path */
#define MIN_LOG_WEIGHT -87.0f

void vqlsp_weights(
    int H, int U, int J, float *scores, const float *lse, int64_t l_sh, int64_t l_su,
    const int64_t *row_coord, const int64_t *key_coord, const float *sign,
    float cancel_ratio, float max_log_weight, float *total, uint8_t *flag)
{
    for (int h = 0; h < H; h++) {
        for (int u = 0; u < U; u++) {
            float *s = scores + ((int64_t)h * U + u) * J;
            float l = lse[h * l_sh + u * l_su];
            int64_t out = (int64_t)h * U + u;
            float net = 0, gained = 0;
            int counted = 0, over = 0;
            for (int j = 0; j < J; j++) {  /* branch-free, so it vectorizes (exp included) */
                int counts = key_coord[j] < row_coord[u];
                float x = s[j] - l;
                over |= counts & (x > max_log_weight);
                counted |= counts;
                x = x < max_log_weight ? x : max_log_weight;
                float e = expf(x > MIN_LOG_WEIGHT ? x : MIN_LOG_WEIGHT) * (float)counts;
                gained += sign[j] > 0 ? e : 0.0f;
                s[j] = e * sign[j];
                net += s[j];
            }
            float t = 1 + net;
            uint8_t f = !counted ? 0 : (over || t <= cancel_ratio * (1 + gained)) ? 2 : 1;
            if (f != 1) t = 1;
            float inv = 1 / t;
            for (int j = 0; j < J; j++) s[j] = f == 1 ? s[j] * inv : 0.0f;
            total[out] = t;
            flag[out] = f;
        }
    }
}

void vqlsp_apply(
    int H, int U, int Dh, const float *delta, float *o, int64_t o_sh, int64_t o_su,
    float *lse, int64_t l_sh, int64_t l_su, const float *total, const uint8_t *flag, float *moved)
{
    for (int h = 0; h < H; h++) {
        for (int u = 0; u < U; u++) {
            int64_t out = (int64_t)h * U + u;
            moved[out] = 0;
            if (flag[out] != 1) continue;
            const float *dr = delta + out * Dh;
            float *orow = o + h * o_sh + u * o_su;
            float keep = 1 / total[out] - 1, n2 = 0;
            for (int d = 0; d < Dh; d++) {
                float step = dr[d] + orow[d] * keep;
                orow[d] += step;
                n2 += step * step;
            }
            lse[h * l_sh + u * l_su] += logf(total[out]);
            moved[out] = sqrtf(n2);
        }
    }
}
