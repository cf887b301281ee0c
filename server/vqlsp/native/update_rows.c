/*
 * The tail's accumulator update (vqlsp/engine/attention.py, update_rows_) in one pass: per
 * row and query head, the scores of the changed keys, their weights relative to the row's
 * mass, the new o and lse written in place, and the cancellation check. PyTorch needs two
 * batched matmuls only J (10-70) keys wide, far below BLAS's peak, and a dozen element-wise
 * passes over (heads, rows, keys) temporaries around them; here the keys of one kv head stay
 * in L1 while the rows of its query heads stream past them once, in register tiles of a few
 * rows. Keys are taken in order of coordinate, so a tile scores only those that count for
 * one of its rows (a row between changed keys sees only the earlier ones; a tile before all
 * of them is skipped). Same algebra as attention.py, float32, summation order aside:
 *
 *   w_j    = exp(q.k_j / sqrt(Dh) - lse)    for keys that count (key_coord[j] < row_coord[u]),
 *            clamped at e^max_log_weight
 *   total  = 1 + sum_j sign_j w_j           (sign +1 arrives, -1 leaves)
 *   cancel = total <= cancel_ratio (1 + sum_arriving w_j)  or  sum_arriving w_j >= overflow
 *   step   = sum_j (sign_j w_j / total) v_j + o (1/total - 1);  o += step;  lse += log(total)
 *   moved  = ||step||
 *
 * A (row, head) for which no key counts is left bit for bit (moved 0); a cancelled one is
 * left as it was (the engine recomputes it). Query head h reads kv head h / (H / Hkv)
 * (grouped-query attention) with no copy. q, o (H, U, Dh), lse (H, U), keys, values
 * (Hkv, J, Dh) are given by pointer and strides in elements, Dh contiguous; row_coord (U,),
 * key_coord (J,) int64 and added (J,) uint8 contiguous; moved (H, U) float and cancelled
 * (H, U) uint8 are written. Returns 0, or -1 when its scratch could not be allocated.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__)
#define VW 16   /* floats per vector: one zmm */
#define REGS 16 /* accumulator vectors a tile may keep in registers (of 32) */
#else
#define VW 8
#define REGS 8
#endif
typedef float vec __attribute__((vector_size(VW * 4)));
typedef float vec_u __attribute__((vector_size(VW * 4), aligned(4))); /* unaligned access */

/* weights below e^-87 (float32's smallest normal) are taken as e^-87: no weight that
   matters changes, and the vectorized exp() never leaves its fast path */
#define MIN_LOG_WEIGHT -87.0f

typedef struct {
    int J, Jp, Dh;
    const float *kt;                  /* this kv head's keys, scaled and transposed: (Dh, Jp) */
    const float *values;              /* (J, Dh), row stride vs */
    int64_t vs;
    const int64_t *key_coord;         /* (Jp,) ascending, padding INT64_MAX: never counts */
    const float *sign, *arrives;      /* (Jp,): +1/-1, and 1 for an arriving key */
    float cancel_ratio, max_log_weight, overflow;
} Keys;

typedef struct {
    const float *q[REGS];
    float *o[REGS], *lse[REGS], *moved[REGS];
    uint8_t *cancelled[REGS];
    int64_t coord[REGS];
    int keys; /* the keys that count for some row of the tile: the first ones (by coordinate) */
} Tile;

/* Turns row r's scores s (Jp) into coefficients c_j = sign_j w_j / total in place (0 unless the
   row is updated) and returns its total; *flag: 0 no key counts, 1 update, 2 cancelled. */
static inline float weigh(const Keys *k, int Jp, float *restrict s, float lse, int64_t coord, int *flag)
{
    const float *restrict sign = k->sign, *restrict arrives = k->arrives;
    const int64_t *restrict key_coord = k->key_coord;
    const float top = k->max_log_weight;
    float net = 0, gained = 0;
    int counted = 0;
    for (int j = 0; j < Jp; j++) { /* branch-free, so it vectorizes (exp included) */
        int counts = key_coord[j] < coord;
        float x = s[j] - lse;
        x = x < top ? x : top;
        float e = expf(x > MIN_LOG_WEIGHT ? x : MIN_LOG_WEIGHT) * (float)counts;
        counted |= counts;
        gained += e * arrives[j];
        s[j] = e * sign[j];
        net += s[j];
    }
    float total = 1 + net;
    *flag = !counted ? 0 : (total <= k->cancel_ratio * (1 + gained) || gained >= k->overflow) ? 2 : 1;
    float inv = *flag == 1 ? 1 / total : 0.0f;
    for (int j = 0; j < Jp; j++) s[j] *= inv;
    return total;
}

static inline void finish_row(const Tile *t, int r, int flag, float total, float step_norm2)
{
    *t->cancelled[r] = flag == 2;
    *t->moved[r] = flag == 1 ? sqrtf(step_norm2) : 0.0f;
    if (flag == 1) *t->lse[r] += logf(total);
}

/* `rows` (<= R) rows of one query head, Dh = DB vectors: scores by broadcasting q[d] against a
   block of VW keys (the tile's R accumulators stay in registers over d), then the coefficients,
   then sum_j c_j v_j with R x DB accumulators in registers, then o and lse. s: scratch (R, Jp). */
static inline __attribute__((always_inline)) void tile_rows(int R, int DB, int rows, const Keys *k, const Tile *t,
                                                            float *restrict s)
{
    const int Jp = k->Jp, Dh = k->Dh, Jt = (t->keys + VW - 1) / VW * VW; /* score only those keys */
    const float *restrict kt = k->kt;
    for (int jb = 0; jb < Jt; jb += VW) {
        /* even and odd d in separate sums: twice the independent FMA chains, and half the
           rounding of one long sum (Dh is even: a multiple of VW) */
        vec even[REGS], odd[REGS];
        for (int r = 0; r < R; r++) even[r] = odd[r] = (vec){0};
        for (int d = 0; d < Dh; d += 2) {
            vec k0 = *(const vec *)(kt + (int64_t)d * Jp + jb), k1 = *(const vec *)(kt + (int64_t)(d + 1) * Jp + jb);
            for (int r = 0; r < R; r++) {
                even[r] += k0 * t->q[r][d];
                odd[r] += k1 * t->q[r][d + 1];
            }
        }
        for (int r = 0; r < R; r++) *(vec *)(s + r * Jp + jb) = even[r] + odd[r];
    }
    float total[REGS];
    int flag[REGS];
    for (int r = 0; r < R; r++) total[r] = weigh(k, Jt, s + r * Jp, *t->lse[r], t->coord[r], &flag[r]);
    vec acc[REGS]; /* row r, vector b of d_head: acc[r * DB + b] */
    for (int i = 0; i < R * DB; i++) acc[i] = (vec){0};
    const float *restrict values = k->values;
    for (int j = 0; j < t->keys; j++) {
        vec v[REGS];
        for (int b = 0; b < DB; b++) v[b] = *(const vec_u *)(values + j * k->vs + b * VW);
        for (int r = 0; r < R; r++) {
            float c = s[r * Jp + j];
            for (int b = 0; b < DB; b++) acc[r * DB + b] += v[b] * c;
        }
    }
    for (int r = 0; r < rows; r++) {
        vec n2 = (vec){0};
        if (flag[r] == 1) {
            float keep = 1 / total[r] - 1;
            for (int b = 0; b < DB; b++) {
                vec_u *o = (vec_u *)(t->o[r] + b * VW);
                vec step = acc[r * DB + b] + *o * keep;
                *o += step;
                n2 += step * step;
            }
        }
        float sum = 0;
        for (int i = 0; i < VW; i++) sum += n2[i];
        finish_row(t, r, flag[r], total[r], sum);
    }
}

/* any Dh, one row at a time, plain loops */
static void one_row(const Keys *k, const Tile *t, float *s)
{
    const int Jp = k->Jp, Dh = k->Dh, Jt = t->keys;
    for (int j = 0; j < Jt; j++) s[j] = 0;
    for (int d = 0; d < Dh; d++) {
        const float *kt = k->kt + (int64_t)d * Jp;
        float qd = t->q[0][d];
        for (int j = 0; j < Jt; j++) s[j] += kt[j] * qd;
    }
    int flag;
    float total = weigh(k, Jt, s, *t->lse[0], t->coord[0], &flag), n2 = 0;
    if (flag == 1) {
        float keep = 1 / total - 1, *o = t->o[0];
        for (int d = 0; d < Dh; d++) {
            float delta = 0;
            for (int j = 0; j < Jt; j++) delta += s[j] * k->values[j * k->vs + d];
            float step = delta + o[d] * keep;
            o[d] += step;
            n2 += step * step;
        }
    }
    finish_row(t, 0, flag, total, n2);
}

typedef void (*tile_fn)(int, const Keys *, const Tile *, float *);
#define TILE(R, DB) static void tile_##R##_##DB(int rows, const Keys *k, const Tile *t, float *s) \
    { tile_rows(R, DB, rows, k, t, s); }
/* R rows x DB vectors of d_head: R x DB accumulators fill the registers */
TILE(8, 1) TILE(8, 2) TILE(4, 4) TILE(2, 8)
static void tile_any(int rows, const Keys *k, const Tile *t, float *s) { (void)rows; one_row(k, t, s); }

int vqlsp_update_rows(
    int H, int Hkv, int U, int J, int Dh,
    const float *q, int64_t q_sh, int64_t q_su, float *o, int64_t o_sh, int64_t o_su,
    float *lse, int64_t l_sh, int64_t l_su, const int64_t *row_coord,
    const float *keys, int64_t k_sh, int64_t k_sj, const float *values, int64_t v_sh, int64_t v_sj,
    const int64_t *key_coord, const uint8_t *added,
    float scale, float cancel_ratio, float max_log_weight, float overflow,
    float *moved, uint8_t *cancelled)
{
    int DB = Dh % VW == 0 ? Dh / VW : 0, R = 1;
    tile_fn fn = tile_any;
    switch (DB) {
    case 1: fn = tile_8_1, R = 8; break;
    case 2: fn = tile_8_2, R = 8; break;
    case 4: fn = tile_4_4, R = 4; break;
    case 8: fn = tile_2_8, R = 2; break;
    }
    int Jp = (J + VW - 1) / VW * VW;
    if (Jp == 0) Jp = VW;
    /* scratch, keys in order of coordinate: keys transposed (Hkv, Dh, Jp), values (Hkv, J, Dh),
       sign, arrives (Jp), scores (R, Jp), coordinates (Jp), the order (J) */
    size_t kt_n = (size_t)Hkv * Dh * Jp, v_n = (size_t)Hkv * J * Dh;
    size_t floats = kt_n + v_n + 2 * (size_t)Jp + (size_t)R * Jp;
    float *scratch = aligned_alloc(64, ((floats + 2 * (size_t)Jp) * 4 + (size_t)Jp * 8 + 63) / 64 * 64);
    if (!scratch) return -1;
    float *kt = scratch, *vs = kt + kt_n, *sign = vs + v_n, *arrives = sign + Jp, *s = arrives + Jp;
    int64_t *kc = (int64_t *)(s + (size_t)R * Jp);
    int *by_coord = (int *)(kc + Jp);
    for (int j = 0; j < J; j++) { /* insertion sort (stable): J is small */
        int i = j;
        for (; i > 0 && key_coord[by_coord[i - 1]] > key_coord[j]; i--) by_coord[i] = by_coord[i - 1];
        by_coord[i] = j;
    }
    memset(kt, 0, kt_n * 4);
    for (int g = 0; g < Hkv; g++)
        for (int j = 0; j < J; j++) {
            const float *key = keys + g * k_sh + by_coord[j] * k_sj, *value = values + g * v_sh + by_coord[j] * v_sj;
            for (int d = 0; d < Dh; d++) {
                kt[((size_t)g * Dh + d) * Jp + j] = key[d] * scale;
                vs[((size_t)g * J + j) * Dh + d] = value[d];
            }
        }
    for (int j = 0; j < Jp; j++) {
        kc[j] = j < J ? key_coord[by_coord[j]] : INT64_MAX;
        arrives[j] = j < J && added[by_coord[j]];
        sign[j] = arrives[j] ? 1.0f : -1.0f;
    }
    int group = H / Hkv;
    for (int g = 0; g < Hkv; g++) {
        Keys k = {J, Jp, Dh, kt + (size_t)g * Dh * Jp, vs + (size_t)g * J * Dh, Dh, kc, sign, arrives,
                  cancel_ratio, max_log_weight, overflow};
        for (int h = g * group; h < (g + 1) * group; h++) {
            for (int u0 = 0; u0 < U; u0 += R) {
                int rows = U - u0 < R ? U - u0 : R;
                Tile t;
                int64_t last = INT64_MIN;
                for (int r = 0; r < R; r++) { /* a short tile repeats its last row, written once */
                    int u = u0 + (r < rows ? r : rows - 1);
                    t.q[r] = q + h * q_sh + u * q_su;
                    t.o[r] = o + h * o_sh + u * o_su;
                    t.lse[r] = lse + h * l_sh + u * l_su;
                    t.moved[r] = moved + (int64_t)h * U + u;
                    t.cancelled[r] = cancelled + (int64_t)h * U + u;
                    t.coord[r] = row_coord[u];
                    last = t.coord[r] > last ? t.coord[r] : last;
                }
                t.keys = 0;
                while (t.keys < J && kc[t.keys] < last) t.keys++;
                if (t.keys == 0) { /* no key counts for the tile: its rows stay as they are */
                    for (int r = 0; r < rows; r++) *t.moved[r] = 0, *t.cancelled[r] = 0;
                    continue;
                }
                fn(rows, &k, &t, s);
            }
        }
    }
    free(scratch);
    return 0;
}
