/* test_optim.c — AdamW, learning-rate schedules and gradient clipping (src/train/optim.h)
 * against PyTorch and transformers (tests/ref/gen_train_fixtures.py --optim ->
 * tests/data/train/adamw.json):
 *  - 8 steps of torch.optim.AdamW (lr 1e-2, betas 0.9 / 0.99, eps 1e-8, weight decay 0.1)
 *    driven by transformers' get_cosine_schedule_with_warmup (warmup 2) with
 *    torch.nn.utils.clip_grad_norm_(1.0) before each step (5 of the 8 gradients are
 *    clipped): the learning rate, the norm, the clipped gradient and the parameters after
 *    every step. Tolerance: parameters 1e-6 absolute (values ~1, float32 arithmetic in
 *    the same order as torch; measured max in the log), norms 1e-6 relative.
 *  - get_cosine / get_linear / get_cosine_with_min_lr schedules (warmup 4, 20 steps) at
 *    every step: 1e-6 relative.
 * Plus hand-checked properties: decoupled decay (zero gradient still shrinks the
 * parameter by lr * wd), bias correction at step 1 (the first update is lr * sign(g)).
 */
#include "testutil.h"

#include "train/optim.h"

#include <jansson.h>
#include <math.h>

static json_t *load_fixture(void)
{
    json_error_t je;
    json_t *j = json_load_file("tests/data/train/adamw.json", 0, &je);
    cr_assert(j, "tests/data/train/adamw.json: %s (run tests/ref/gen_train_fixtures.py --optim)", je.text);
    return j;
}

static double num(const json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

static void floats(float *dst, const json_t *a, size_t n)
{
    cr_assert_eq(json_array_size(a), n);
    for (size_t i = 0; i < n; i++) dst[i] = (float)json_number_value(json_array_get(a, i));
}

Test(optim, adamw_matches_torch)
{
    json_t *fx = load_fixture();
    const size_t n = (size_t)json_integer_value(json_object_get(fx, "n"));
    const int64_t steps = json_integer_value(json_object_get(fx, "steps"));
    const tw_adamw_params p = {.beta1 = (float)num(fx, "beta1"), .beta2 = (float)num(fx, "beta2"),
                               .eps = (float)num(fx, "eps"), .weight_decay = (float)num(fx, "weight_decay")};
    const float lr_max = (float)num(fx, "lr"), clip = (float)num(fx, "clip");
    const int64_t warmup = json_integer_value(json_object_get(fx, "warmup"));
    float param[64], m[64] = {0}, v[64] = {0}, g[64], ref[64];
    cr_assert(n <= 64);
    floats(param, json_object_get(fx, "param0"), n);
    const json_t *rec = json_object_get(fx, "record");
    double max_err = 0;
    int n_clipped = 0;
    for (int64_t s = 0; s < steps; s++) {
        const json_t *r = json_array_get(rec, (size_t)s);
        floats(g, json_array_get(json_object_get(fx, "grads"), (size_t)s), n);
        const float lr = tw_lr_at(TW_LR_COSINE, s, warmup, steps, lr_max, 0.0f);
        cr_assert(fabs(lr - num(r, "lr")) <= 1e-6 * lr_max, "step %lld: lr %.9g vs torch %.9g", (long long)s, lr,
                  num(r, "lr"));
        const double norm = tw_grad_clip(g, (int64_t)n, clip);
        cr_assert(fabs(norm - num(r, "norm")) <= 1e-6 * num(r, "norm"), "step %lld: norm %.9g vs %.9g", (long long)s,
                  norm, num(r, "norm"));
        n_clipped += norm > clip;
        floats(ref, json_object_get(r, "grad_clipped"), n);
        for (size_t i = 0; i < n; i++) cr_assert(fabsf(g[i] - ref[i]) <= 1e-6f * (1 + fabsf(ref[i])), "clipped grad");
        tw_adamw_step(param, m, v, g, (int64_t)n, s + 1, lr, &p);
        floats(ref, json_object_get(r, "param"), n);
        for (size_t i = 0; i < n; i++) {
            max_err = fmax(max_err, fabsf(param[i] - ref[i]));
            cr_assert(fabsf(param[i] - ref[i]) <= 1e-6f, "step %lld param %zu: %.9g vs torch %.9g", (long long)s, i,
                      param[i], ref[i]);
        }
    }
    cr_assert(n_clipped >= 3, "the fixture should exercise clipping (%d steps clipped)", n_clipped);
    cr_log_info("adamw vs torch: %lld steps, %d clipped, max |param - torch| = %.3g", (long long)steps, n_clipped,
                max_err);
    json_decref(fx);
}

Test(optim, schedules_match_transformers)
{
    json_t *fx = load_fixture();
    const json_t *sc = json_object_get(fx, "schedules");
    const float lr_max = (float)num(sc, "lr_max");
    const int64_t warmup = json_integer_value(json_object_get(sc, "warmup")),
                  total = json_integer_value(json_object_get(sc, "total"));
    const float min_rate = (float)num(sc, "min_lr_rate");
    const json_t *lrs = json_object_get(sc, "lrs");
    const struct { const char *name; tw_lr_schedule kind; float lr_min; } cases[] = {
        {"cosine", TW_LR_COSINE, 0.0f}, {"linear", TW_LR_LINEAR, 0.0f}, {"cosine_min_lr", TW_LR_COSINE, min_rate * lr_max}};
    for (size_t c = 0; c < 3; c++) {
        const json_t *a = json_object_get(lrs, cases[c].name);
        cr_assert_eq((int64_t)json_array_size(a), total + 1);
        for (int64_t s = 0; s <= total; s++) {
            const double ref = json_number_value(json_array_get(a, (size_t)s));
            const float lr = tw_lr_at(cases[c].kind, s, warmup, total, lr_max, cases[c].lr_min);
            cr_assert(fabs(lr - ref) <= 1e-6 * lr_max, "%s step %lld: %.9g vs transformers %.9g", cases[c].name,
                      (long long)s, lr, ref);
        }
    }
    /* constant: warmup then flat */
    cr_assert_float_eq(tw_lr_at(TW_LR_CONSTANT, 1, 4, 20, 1.0f, 0.0f), 0.25f, 1e-7f);
    cr_assert_float_eq(tw_lr_at(TW_LR_CONSTANT, 15, 4, 20, 1.0f, 0.0f), 1.0f, 1e-7f);
    /* past the end: held at lr_min (transformers' cosine would turn back up) */
    cr_assert_float_eq(tw_lr_at(TW_LR_COSINE, 30, 4, 20, 1.0f, 0.1f), 0.1f, 1e-7f);
    json_decref(fx);
}

Test(optim, adamw_properties)
{
    tw_adamw_params p = tw_adamw_default_params();
    p.weight_decay = 0.5f;
    /* zero gradient: only the decoupled decay acts: p *= 1 - lr wd */
    float x[2] = {2.0f, -4.0f}, m[2] = {0}, v[2] = {0}, g0[2] = {0, 0};
    tw_adamw_step(x, m, v, g0, 2, 1, 0.1f, &p);
    cr_assert_float_eq(x[0], 2.0f * 0.95f, 1e-6f);
    cr_assert_float_eq(x[1], -4.0f * 0.95f, 1e-6f);
    /* no decay, step 1: bias correction makes the update lr * g / (|g| + eps') ~ lr sign(g) */
    p.weight_decay = 0;
    float y[3] = {1, 1, 1}, m2[3] = {0}, v2[3] = {0}, g[3] = {1e-3f, -5.0f, 200.0f};
    tw_adamw_step(y, m2, v2, g, 3, 1, 0.01f, &p);
    cr_assert_float_eq(y[0], 1 - 0.01f, 1e-6f);
    cr_assert_float_eq(y[1], 1 + 0.01f, 1e-6f);
    cr_assert_float_eq(y[2], 1 - 0.01f, 1e-6f);
    cr_assert_float_eq(m2[1], -0.5f, 1e-6f);
    cr_assert_float_eq(v2[2], 0.001f * 40000.0f, 1e-2f);
}

Test(optim, grad_clip)
{
    float g[4] = {3, 4, 0, 0};
    cr_assert_float_eq(tw_grad_norm(g, 4), 5.0, 1e-12);
    /* below the limit: untouched */
    double nrm = tw_grad_clip(g, 4, 10.0f);   /* (the assert macros evaluate twice) */
    cr_assert_float_eq(nrm, 5.0, 1e-12);
    cr_assert_eq(g[0], 3.0f);
    /* above: scaled to max_norm / (norm + 1e-6) */
    nrm = tw_grad_clip(g, 4, 1.0f);
    cr_assert_float_eq(nrm, 5.0, 1e-12);
    cr_assert_float_eq(g[0], 3.0f / (5.0f + 1e-6f), 1e-7f);
    nrm = tw_grad_norm(g, 4);
    cr_assert_float_eq(nrm, 1.0, 1e-6);
    /* max_norm <= 0: no clipping */
    float h[2] = {30, 40};
    nrm = tw_grad_clip(h, 2, 0.0f);
    cr_assert_float_eq(nrm, 50.0, 1e-12);
    cr_assert_eq(h[1], 40.0f);
}
