/* test_lmodel.c — the trainable model (src/train/lmodel.h) against torch + PEFT: the loss
 * and every LoRA A / B gradient of the tiny HF models (llama, qwen2 with QKV bias, qwen3
 * with Q/K norm, llama3 RoPE) with the fixed LoRA of tests/ref/gen_train_fixtures.py
 * (tests/data/train); gradients bitwise independent of the thread count; LoRA dropout
 * checked by finite differences of the whole model along the gradient (the mask is a
 * function of the seed, so both sides see the same mask); adapter round trip
 * lmodel -> GGUF file -> lmodel bit for bit. */
#include "testutil.h"

#include "model/config.h"
#include "model/kv.h"
#include "model/llama.h"
#include "model/lora.h"
#include "train/lmodel.h"

#include <jansson.h>
#include <math.h>

static const char *const MODELS[] = {"llama_tiny", "qwen2_tiny", "qwen3_tiny", "llama3_tiny"};

/* fixture LoRA values (gen_train_fixtures.py init_value) */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static void init_matrix(float *m, int layer, int target, int which, int64_t n, double amp)
{
    const uint64_t seed = (uint64_t)((layer * 8 + target) * 2 + which + 1000);
    for (int64_t i = 0; i < n; i++) {
        const uint64_t h = mix64(seed * 0x9E3779B97F4A7C15ULL + (uint64_t)(i + 1) * 0xD1B54A32D192ED03ULL);
        const double u = (double)(h >> 40) / (double)(1 << 24);
        m[i] = (float)((2.0 * u - 1.0) * amp);
    }
}

/* the flat parameters of an all-targets model in the fixture's values: the flat order
 * (layer, target, A then B) is the fixture's order */
static void fixture_params(tw_lmodel *lm, int32_t rank)
{
    const tw_model_config *c = tw_lmodel_config(lm);
    const int64_t E = c->n_embd, Q = (int64_t)c->n_head * c->head_dim, KV = (int64_t)c->n_head_kv * c->head_dim,
                  F = c->n_ff;
    const int64_t rows[7] = {Q, KV, KV, E, F, F, E}, cols[7] = {E, E, E, Q, E, E, F};
    float *p = tw_lmodel_lora_params(lm);
    int64_t off = 0;
    for (int l = 0; l < c->n_layer; l++)
        for (int t = 0; t < 7; t++) {
            init_matrix(p + off, l, t, 0, rank * cols[t], 0.25);
            off += rank * cols[t];
            init_matrix(p + off, l, t, 1, rows[t] * rank, 0.1);
            off += rows[t] * rank;
        }
    cr_assert_eq(off, tw_lmodel_n_params(lm));
}

typedef struct seq { int32_t tok[64], tg[64]; float w[64]; int64_t T; } seq;

static json_t *load_fixture(seq *s)
{
    json_error_t je;
    json_t *fx = json_load_file("tests/data/train/lora_grads.json", 0, &je);
    cr_assert(fx, "tests/data/train/lora_grads.json: %s (run tests/ref/gen_train_fixtures.py)", je.text);
    const json_t *ta = json_object_get(fx, "tokens");
    const int64_t T = (int64_t)json_array_size(ta), P = json_integer_value(json_object_get(fx, "prompt_tokens"));
    cr_assert(T <= 64);
    for (int64_t i = 0; i < T; i++) s->tok[i] = (int32_t)json_integer_value(json_array_get(ta, (size_t)i));
    for (int64_t t = 0; t < T; t++) {
        s->tg[t] = t + 1 < T ? s->tok[t + 1] : 0;
        s->w[t] = t + 1 < T && t + 1 >= P ? 1.0f / (float)(T - P) : 0.0f;
    }
    s->T = T;
    return fx;
}

static tw_lmodel *open_model(tw_model_files **mf, const char *name, int32_t rank, float alpha, float dropout, int nt)
{
    char path[256];
    snprintf(path, sizeof path, "tests/data/llama/%s", name);
    tw_error err = {0};
    cr_assert_eq(tw_model_files_open(mf, path, &err), TW_OK, "%s", err.msg);
    tw_lmodel_params p = tw_lmodel_default_params();
    p.targets = TW_LORA_ALL;
    p.rank = rank;
    p.alpha = alpha;
    p.dropout = dropout;
    p.max_T = 64;
    p.n_threads = nt;
    tw_lmodel *lm = NULL;
    cr_assert_eq(tw_lmodel_new(&lm, *mf, &p, &err), TW_OK, "%s", err.msg);
    fixture_params(lm, rank);
    return lm;
}

Test(lmodel, loss_and_grads_match_peft)
{
    seq s;
    json_t *fx = load_fixture(&s);
    const int32_t rank = (int32_t)json_integer_value(json_object_get(fx, "rank"));
    const float alpha = (float)json_number_value(json_object_get(fx, "alpha"));
    for (size_t mi = 0; mi < sizeof MODELS / sizeof MODELS[0]; mi++) {
        tw_model_files *mf = NULL;
        tw_lmodel *lm = open_model(&mf, MODELS[mi], rank, alpha, 0, 2);
        const json_t *mj = json_object_get(json_object_get(fx, "models"), MODELS[mi]);
        cr_assert(mj);
        const double ref_loss = json_number_value(json_object_get(mj, "loss"));
        const double l_eval = tw_lmodel_forward(lm, s.tok, s.tg, s.w, s.T, 0, false);
        tw_lmodel_zero_grads(lm);
        tw_lmodel_forward(lm, s.tok, NULL, NULL, s.T, 0, true);
        const double loss = tw_lmodel_backward(lm, s.tg, s.w);
        cr_assert_eq(l_eval, loss, "evaluation and training forward disagree: %.9g vs %.9g", l_eval, loss);
        cr_log_info("%s: loss %.7f vs PEFT %.7f", MODELS[mi], loss, ref_loss);
        cr_assert(fabs(loss - ref_loss) <= 1e-5 * fabs(ref_loss), "%s: loss %.8g vs PEFT %.8g", MODELS[mi], loss, ref_loss);
        char path[256];
        snprintf(path, sizeof path, "tests/data/train/%s.grads.bin", MODELS[mi]);
        const int64_t nf = json_integer_value(json_object_get(mj, "n_floats"));
        cr_assert_eq(nf, tw_lmodel_n_params(lm));
        float *ref = malloc((size_t)nf * sizeof *ref);
        FILE *f = fopen(path, "rb");
        cr_assert(f, "%s missing", path);
        cr_assert_eq(fread(ref, sizeof(float), (size_t)nf, f), (size_t)nf);
        fclose(f);
        const float *g = tw_lmodel_lora_grads(lm);
        double gmax = 0, emax = 0;
        for (int64_t i = 0; i < nf; i++) {
            gmax = fmax(gmax, fabs(ref[i]));
            emax = fmax(emax, fabs(ref[i] - g[i]));
        }
        cr_log_info("%s: LoRA grads vs PEFT: max |diff| %.3g of max |g| %.3g", MODELS[mi], emax, gmax);
        cr_assert(gmax > 0 && emax <= 2e-5 * gmax, "%s: gradients differ by %.3g (max %.3g)", MODELS[mi], emax, gmax);
        /* thread count: bitwise the same gradients with 1 thread */
        tw_lmodel *l1 = NULL;
        tw_model_files *mf1 = NULL;
        l1 = open_model(&mf1, MODELS[mi], rank, alpha, 0, 1);
        tw_lmodel_zero_grads(l1);
        tw_lmodel_forward(l1, s.tok, NULL, NULL, s.T, 0, true);
        const double loss1 = tw_lmodel_backward(l1, s.tg, s.w);
        cr_assert_eq(loss1, loss);
        cr_assert(memcmp(tw_lmodel_lora_grads(l1), g, (size_t)nf * sizeof *g) == 0,
                  "%s: gradients depend on the thread count", MODELS[mi]);
        tw_lmodel_free(l1);
        tw_model_files_free(mf1);
        free(ref);
        tw_lmodel_free(lm);
        tw_model_files_free(mf);
    }
    json_decref(fx);
}

/* LoRA dropout 0.2: the directional derivative of the training loss (same mask seed) along
 * g / |g| by central differences vs |g| */
Test(lmodel, dropout_gradient_fd)
{
    seq s;
    json_t *fx = load_fixture(&s);
    tw_model_files *mf = NULL;
    tw_lmodel *lm = open_model(&mf, "qwen2_tiny", 4, 8.0f, 0.2f, 2);
    const uint64_t ds = 12345;
    tw_lmodel_zero_grads(lm);
    tw_lmodel_forward(lm, s.tok, NULL, NULL, s.T, ds, true);
    const double l0 = tw_lmodel_backward(lm, s.tg, s.w);
    const double l_nodrop = tw_lmodel_forward(lm, s.tok, s.tg, s.w, s.T, ds, false);
    cr_assert(fabs(l0 - l_nodrop) > 1e-4, "dropout changed nothing: %.7g vs %.7g", l0, l_nodrop);
    const int64_t n = tw_lmodel_n_params(lm);
    float *p = tw_lmodel_lora_params(lm);
    const float *g = tw_lmodel_lora_grads(lm);
    double gn = 0;
    for (int64_t i = 0; i < n; i++) gn += (double)g[i] * g[i];
    gn = sqrt(gn);
    float *p0 = malloc((size_t)n * sizeof *p0);
    memcpy(p0, p, (size_t)n * sizeof *p0);
    const double h = 1e-2;
    double L[2];
    for (int sgn = 0; sgn < 2; sgn++) {
        for (int64_t i = 0; i < n; i++) p[i] = (float)(p0[i] + (sgn ? -h : h) * g[i] / gn);
        tw_lmodel_forward(lm, s.tok, NULL, NULL, s.T, ds, true);
        float *gsave = malloc((size_t)n * sizeof *gsave);
        memcpy(gsave, g, (size_t)n * sizeof *gsave);
        L[sgn] = tw_lmodel_backward(lm, s.tg, s.w);   /* the training loss with this mask */
        memcpy(tw_lmodel_lora_grads(lm), gsave, (size_t)n * sizeof *gsave);
        free(gsave);
    }
    const double fd = (L[0] - L[1]) / (2 * h);
    cr_log_info("dropout 0.2: |g| %.7g, finite differences along g %.7g", gn, fd);
    cr_assert(fabs(fd - gn) <= 2e-3 * gn, "dropout gradient: |g| %.7g vs finite differences %.7g", gn, fd);
    free(p0);
    tw_lmodel_free(lm);
    tw_model_files_free(mf);
    json_decref(fx);
}

/* lmodel -> adapter -> GGUF / PEFT file -> adapter -> lmodel, bit for bit (GGUF llama:
 * B rows of q / k go through llama.cpp's order and back) */
Test(lmodel, adapter_round_trip)
{
    seq s;
    json_t *fx = load_fixture(&s);
    tw_model_files *mf = NULL;
    tw_lmodel *lm = open_model(&mf, "llama_tiny", 4, 8.0f, 0, 1);
    const int64_t n = tw_lmodel_n_params(lm);
    float *orig = malloc((size_t)n * sizeof *orig);
    memcpy(orig, tw_lmodel_lora_params(lm), (size_t)n * sizeof *orig);
    tw_error err = {0};
    tw_lora *l = NULL;
    cr_assert_eq(tw_lmodel_to_lora(lm, NULL, &l, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(l->n, 2 * 7);
    char *dir = tw_test_tmpdir();
    char g[512], pd[512];
    snprintf(g, sizeof g, "%s/a.gguf", dir);
    snprintf(pd, sizeof pd, "%s/peft", dir);
    cr_assert_eq(tw_lora_write_gguf(l, g, NULL, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_lora_write_peft(l, pd, NULL, &err), TW_OK, "%s", err.msg);
    tw_lora_free(l);
    for (int fmt = 0; fmt < 2; fmt++) {
        memset(tw_lmodel_lora_params(lm), 0, (size_t)n * sizeof(float));
        if (fmt == 0) cr_assert_eq(tw_lora_read_gguf(&l, g, &err), TW_OK, "%s", err.msg);
        else cr_assert_eq(tw_lora_read_peft(&l, pd, tw_lmodel_config(lm), &err), TW_OK, "%s", err.msg);
        cr_assert_eq(tw_lmodel_from_lora(lm, l, &err), TW_OK, "%s", err.msg);
        cr_assert(memcmp(orig, tw_lmodel_lora_params(lm), (size_t)n * sizeof(float)) == 0, "%s round trip changed the "
                  "parameters", fmt ? "PEFT" : "GGUF");
        tw_lora_free(l);
    }
    /* a mismatching adapter (rank 2) is refused with the tensor named */
    tw_lmodel_params p2 = tw_lmodel_default_params();
    p2.targets = TW_LORA_ALL;
    p2.rank = 2;
    p2.max_T = 8;
    tw_lmodel *lm2 = NULL;
    cr_assert_eq(tw_lmodel_new(&lm2, mf, &p2, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_lora_read_gguf(&l, g, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_lmodel_from_lora(lm2, l, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "blk.0.attn_q.weight"), "%s", err.msg);
    tw_lora_free(l);
    tw_lmodel_free(lm2);
    free(orig);
    free(dir);
    tw_lmodel_free(lm);
    tw_model_files_free(mf);
    json_decref(fx);
}

/* ---- QLoRA on the real SmolLM2-135M-Instruct Q4_1 file ---------------------------------- */

static const char *smollm2_path(void)
{
    static char p[600];
    const char *e = getenv("TW_SMOLLM2");
    if (e) snprintf(p, sizeof p, "%s", e);
    else snprintf(p, sizeof p, "%s/.cache/tunewise/models/SmolLM2-135M-Instruct.Q4_1.gguf", getenv("HOME") ? getenv("HOME") : "");
    if (access(p, R_OK) != 0)
        cr_assert_fail("the SmolLM2-135M-Instruct Q4_1 model is not at %s: run scripts/get-models.sh (or set TW_SMOLLM2)", p);
    return p;
}

/* The GGUF file's own layout (llama.cpp's permuted q/k rows, NORMAL RoPE, Q4_1 weights,
 * tied Q8_0 embeddings): with PEFT's init (B = 0) the training forward's loss equals the
 * cross-entropy of tw_llama_forward's logits (TW_MATMUL_FLOAT, f32 KV cache); with a
 * non-zero B, the directional derivative along g/|g| matches central differences. */
Test(lmodel, qlora_smollm2_q4_1)
{
    const char *path = smollm2_path();
    tw_error err = {0};
    tw_model_files *mf = NULL;
    cr_assert_eq(tw_model_files_open(&mf, path, &err), TW_OK, "%s", err.msg);
    tw_lmodel_params p = tw_lmodel_default_params();
    p.targets = TW_LORA_Q | TW_LORA_K | TW_LORA_DOWN;
    p.rank = 4;
    p.alpha = 8;
    p.max_T = 12;
    p.n_threads = 2;
    tw_lmodel *lm = NULL;
    cr_assert_eq(tw_lmodel_new(&lm, mf, &p, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_lmodel_init_peft(lm, 3, &err), TW_OK, "%s", err.msg);
    const int32_t tok[12] = {1, 9690, 198, 2683, 314, 253, 5356, 30, 2, 198, 1, 4093};
    int32_t tg[12];
    float w[12];
    const int64_t T = 12;
    for (int64_t t = 0; t < T; t++) {
        tg[t] = t + 1 < T ? tok[t + 1] : 0;
        w[t] = t + 1 < T ? 1.0f / 11 : 0.0f;
    }
    const double loss0 = tw_lmodel_forward(lm, tok, tg, w, T, 0, false);
    /* llama.c's logits */
    tw_llama_params lp = tw_llama_default_params();
    lp.matmul = TW_MATMUL_FLOAT;
    lp.n_threads = 2;
    tw_llama *ll = NULL;
    cr_assert_eq(tw_llama_open(&ll, path, &lp, &err), TW_OK, "%s", err.msg);
    tw_kv_params kp = tw_kv_default_params();
    kp.n_cells = 16;
    kp.n_seq = 1;
    kp.type = TW_KV_F32;
    tw_kv *kv = NULL;
    cr_assert_eq(tw_kv_new(&kv, tw_llama_config(ll), &kp, &err), TW_OK, "%s", err.msg);
    const int64_t V = tw_llama_n_vocab(ll);
    float *logits = malloc((size_t)(T * V) * sizeof *logits);
    cr_assert_eq(tw_llama_forward(ll, kv, 0, tok, NULL, (int32_t)T, TW_LOGITS_ALL, logits, &err), TW_OK, "%s", err.msg);
    double ref = 0;
    for (int64_t t = 0; t + 1 < T; t++) {
        const float *z = logits + t * V;
        double mx = z[0], s = 0;
        for (int64_t v = 1; v < V; v++) mx = fmax(mx, z[v]);
        for (int64_t v = 0; v < V; v++) s += exp(z[v] - mx);
        ref += (mx + log(s) - z[tg[t]]) / 11;
    }
    cr_log_info("SmolLM2 Q4_1: training forward loss %.7f, tw_llama_forward %.7f", loss0, ref);
    cr_assert(fabs(loss0 - ref) <= 1e-4 * fabs(ref), "loss %.7g vs llama.c %.7g", loss0, ref);
    free(logits);
    tw_kv_free(kv);
    tw_llama_free(ll);
    /* B random (small), then finite differences along the gradient */
    const int64_t n = tw_lmodel_n_params(lm);
    float *pr = tw_lmodel_lora_params(lm);
    uint64_t s = 777;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        if (pr[i] == 0) pr[i] = (float)(((double)(s >> 11) / 9007199254740992.0 * 2 - 1) * 0.02);
    }
    tw_lmodel_zero_grads(lm);
    tw_lmodel_forward(lm, tok, NULL, NULL, T, 0, true);
    tw_lmodel_backward(lm, tg, w);
    const float *g = tw_lmodel_lora_grads(lm);
    double gn = 0;
    for (int64_t i = 0; i < n; i++) gn += (double)g[i] * g[i];
    gn = sqrt(gn);
    float *p0 = malloc((size_t)n * sizeof *p0);
    memcpy(p0, pr, (size_t)n * sizeof *p0);
    const double h = 1e-2;
    double L[2];
    for (int sgn = 0; sgn < 2; sgn++) {
        for (int64_t i = 0; i < n; i++) pr[i] = (float)(p0[i] + (sgn ? -h : h) * g[i] / gn);
        L[sgn] = tw_lmodel_forward(lm, tok, tg, w, T, 0, false);
    }
    const double fd = (L[0] - L[1]) / (2 * h);
    cr_log_info("SmolLM2 Q4_1 QLoRA (q,k,down r4): |g| %.7g, finite differences along g %.7g", gn, fd);
    cr_assert(gn > 0 && fabs(fd - gn) <= 5e-3 * gn, "|g| %.7g vs finite differences %.7g", gn, fd);
    free(p0);
    tw_lmodel_free(lm);
    tw_model_files_free(mf);
}
