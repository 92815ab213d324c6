/* generate.c — the loops built on the forward pass (llama.h): tw_generate (prefill, then
 * sample / decode / stream with stop strings, EOS and a token budget) and
 * tw_llama_score_choices (log-probabilities of several continuations of one prompt,
 * sharing the prompt's KV cells through a fork). With a constraint (grammar.h) the
 * disallowed logits are set to -INFINITY before the sampler sees them.
 * Deliberately not here: the forward pass (llama.c), the sampler chain (sample.c),
 * chat templates (the caller renders and tokenizes the prompt). */
#include "model/llama.h"
#include "model/grammar.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *tw_stop_reason_name(tw_stop_reason r)
{
    switch (r) {
    case TW_STOP_MAX_TOKENS: return "max_tokens";
    case TW_STOP_EOS: return "eos";
    case TW_STOP_STRING: return "stop";
    case TW_STOP_CONTEXT: return "context";
    case TW_STOP_ABORTED: return "aborted";
    default: return "none";
    }
}

tw_gen_params tw_gen_default_params(void)
{
    return (tw_gen_params){.max_tokens = 64, .sample = tw_sample_default_params()};
}

void tw_gen_result_free(tw_gen_result *r)
{
    if (!r) return;
    tw_buf_free(&r->text);
    tw_tok_ids_free(&r->ids);
    memset(r, 0, sizeof *r);
}

static tw_status ids_push(tw_tok_ids *v, int32_t id, tw_error *err)
{
    void *p = v->v;
    tw_status st = tw_grow(&p, &v->cap, v->n + 1, sizeof *v->v, err);
    v->v = p;
    if (st) return st;
    v->v[v->n++] = id;
    return TW_OK;
}

/* Does token id end a generation? The model's EOS (config or tokenizer). */
static bool is_eog(const tw_llama *m, const tw_tokenizer *tok, int32_t id)
{
    return id == tw_llama_config(m)->eos_id || (tok && id == tw_tokenizer_eos(tok));
}

tw_status tw_generate(tw_llama *m, tw_kv *kv, int32_t seq, const tw_tokenizer *tok, const int32_t *prompt,
                      int32_t n_prompt, const tw_gen_params *p, tw_gen_result *res, tw_error *err)
{
    memset(res, 0, sizeof *res);
    tw_gen_params d = p ? *p : tw_gen_default_params();
    if (n_prompt < 1) return tw_error_set(err, TW_ERR_INVALID, "generate: the prompt has no tokens");
    if (d.max_tokens < 0) return tw_error_set(err, TW_ERR_INVALID, "generate: max tokens %d is negative", d.max_tokens);
    const int32_t V = tw_llama_n_vocab(m);
    tw_sampler *smp = NULL;
    tw_status st = tw_sampler_new(&smp, &d.sample, V, err);
    if (st) return st;
    float *logits = malloc((size_t)V * sizeof *logits);
    tw_tok_ids hist = {0};
    if (!logits) {
        st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        goto done;
    }
    void *hp = NULL;
    if ((st = tw_grow(&hp, &hist.cap, (size_t)n_prompt + (size_t)d.max_tokens + 1, sizeof *hist.v, err))) goto done;
    hist.v = hp;
    memcpy(hist.v, prompt, (size_t)n_prompt * sizeof *hist.v);
    hist.n = (size_t)n_prompt;

    double t0 = tw_now();
    if ((st = tw_llama_forward(m, kv, seq, prompt, NULL, n_prompt, TW_LOGITS_LAST, logits, err))) goto done;
    double t1 = tw_now();
    res->t_prefill = t1 - t0;
    res->n_prompt = n_prompt;
    res->stop = TW_STOP_MAX_TOKENS;

    tw_detok dt;
    if (tok) {
        tw_detok_init(&dt, tok, 0);
        /* the text continues the prompt: keep a SentencePiece token's leading space (as
         * llama.cpp's token_to_piece does), so prompt + text is the whole sequence */
        dt.at_start = false;
    }
    size_t emitted = 0;
    bool stopped = false;
    tw_constraint *con = d.constraint;
    if (con) tw_constraint_reset(con);
    for (int32_t step = 0; step < d.max_tokens && !stopped; step++) {
        if (con && tw_constraint_apply(con, logits, V) == 0) {
            st = tw_error_set(err, TW_ERR_RUNTIME, "generate: the constraint allows no token after %d tokens", step);
            goto done;
        }
        int32_t id = tw_sampler_sample(smp, logits, hist.v, hist.n);
        /* the sampler's last-candidate fallback (rounding) could pick a masked token */
        if (con && logits[id] == -INFINITY) id = tw_argmax(logits, V);
        hist.v[hist.n++] = id;
        if ((st = ids_push(&res->ids, id, err))) goto done;
        res->n_gen++;
        if (con) {
            bool end = tw_constraint_is_end(con, id);
            if ((st = tw_constraint_accept(con, id, err))) goto done;
            if (end) {
                res->stop = TW_STOP_EOS;
                break;
            }
        }
        if (!d.ignore_eos && is_eog(m, tok, id)) {
            res->stop = TW_STOP_EOS;
            break;
        }
        size_t safe = 0;
        if (tok) {
            size_t before = res->text.len;
            if ((st = tw_detok_push(&dt, id, &res->text, err))) goto done;
            size_t at;
            if (d.n_stops && tw_stop_find(res->text.data, res->text.len, d.stops, d.n_stops, before, &at) >= 0) {
                res->text.len = at;
                res->text.data[at] = '\0';
                res->stop = TW_STOP_STRING;
                stopped = true;
                safe = at;
            } else {
                safe = res->text.len - tw_stop_holdback(res->text.data, res->text.len, d.stops, d.n_stops);
            }
            if (d.on_text && safe > emitted) {
                bool go = d.on_text(d.user, res->text.data + emitted, safe - emitted);
                emitted = safe;
                if (!go && !stopped) {
                    res->stop = TW_STOP_ABORTED;
                    stopped = true;
                }
            }
        }
        if (!stopped && con && tw_constraint_done(con)) {
            res->stop = TW_STOP_EOS;   /* the value is complete and nothing may follow */
            stopped = true;
        }
        if (stopped || step + 1 == d.max_tokens) break;
        if (tw_kv_cells_free(kv) < 1) {
            res->stop = TW_STOP_CONTEXT;
            break;
        }
        if ((st = tw_llama_forward(m, kv, seq, &id, NULL, 1, TW_LOGITS_LAST, logits, err))) goto done;
    }
    /* the end: a character still incomplete becomes U+FFFD; held-back text is final now */
    if (tok && res->stop != TW_STOP_STRING && res->stop != TW_STOP_ABORTED) {
        if ((st = tw_detok_flush(&dt, &res->text, err))) goto done;
        if (d.on_text && res->text.len > emitted) d.on_text(d.user, res->text.data + emitted, res->text.len - emitted);
    }
    res->t_decode = tw_now() - t1;
done:
    tw_tok_ids_free(&hist);
    free(logits);
    tw_sampler_free(smp);
    return st;
}

tw_status tw_llama_score_choices(tw_llama *m, tw_kv *kv, int32_t seq, int32_t tmp_seq, const int32_t *prompt,
                                 int32_t n_prompt, const int32_t *const *choices, const int32_t *choice_lens,
                                 int32_t n_choices, double *logprobs, double *const *per_token, tw_error *err)
{
    if (n_prompt < 1) return tw_error_set(err, TW_ERR_INVALID, "score: the prompt has no tokens");
    if (seq == tmp_seq) return tw_error_set(err, TW_ERR_INVALID, "score: the scratch sequence must differ from the prompt's");
    const int32_t V = tw_llama_n_vocab(m);
    int32_t max_len = 0;
    for (int32_t c = 0; c < n_choices; c++) {
        if (choice_lens[c] < 0) return tw_error_set(err, TW_ERR_INVALID, "score: choice %d has a negative length", c);
        for (int32_t j = 0; j < choice_lens[c]; j++)
            if (choices[c][j] < 0 || choices[c][j] >= V)
                return tw_error_set(err, TW_ERR_INVALID, "score: choice %d token %d: id %d outside the vocabulary of %d", c, j,
                                    choices[c][j], V);
        if (choice_lens[c] > max_len) max_len = choice_lens[c];
    }
    /* Choices of >= 2 tokens are evaluated together: each in its own scratch sequence (a
     * fork of seq), up to SCORE_ROWS tokens per multi-sequence forward. rows[c]: where
     * choice c's logits start in the batch's logits (row j predicts its token j + 1). */
    enum { SCORE_ROWS = 256 };
    const int32_t n_seq = tw_kv_n_seq(kv);
    int32_t n_tmp = 0;
    for (int32_t s = tmp_seq; s < n_seq; s++) n_tmp += s != seq;
    if (tmp_seq < 0 || n_tmp < 1)
        return tw_error_set(err, TW_ERR_INVALID, "score: scratch sequence %d not in 0..%d", tmp_seq, n_seq - 1);
    const size_t rows_cap = (size_t)(max_len > SCORE_ROWS ? max_len : SCORE_ROWS);
    float *last = malloc((size_t)V * sizeof *last);
    float *logits = malloc(rows_cap * (size_t)V * sizeof *logits);
    int32_t *bseq = malloc(rows_cap * sizeof *bseq), *btok = malloc(rows_cap * sizeof *btok);
    int32_t *start = malloc((size_t)(n_choices > 0 ? n_choices : 1) * sizeof *start);
    if (!last || !logits || !bseq || !btok || !start) {
        free(last), free(logits), free(bseq), free(btok), free(start);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory for %zu rows of logits", rows_cap);
    }
    tw_status st = tw_llama_forward(m, kv, seq, prompt, NULL, n_prompt, TW_LOGITS_LAST, last, err);
    for (int32_t c0 = 0, c1; c0 < n_choices && st == TW_OK; c0 = c1) {
        /* the group [c0, c1): as many choices as scratch sequences, rows and cells allow */
        int32_t rows = 0, used = 0, s = tmp_seq;
        const int32_t cells_free = tw_kv_cells_free(kv);
        for (c1 = c0; c1 < n_choices; c1++) {
            const int32_t need = choice_lens[c1] > 1 ? choice_lens[c1] - 1 : 0;
            /* (a first choice longer than the free cells goes alone: the forward reports it) */
            if (need > 0 && used > 0 && (used == n_tmp || (size_t)(rows + need) > rows_cap || rows + need > cells_free))
                break;
            start[c1] = rows;
            if (need == 0) continue;
            if (s == seq) s++;
            if ((st = tw_kv_seq_fork(kv, s, seq, err))) break;
            for (int32_t j = 0; j < need; j++) {
                bseq[rows + j] = s;
                btok[rows + j] = choices[c1][j];
            }
            rows += need;
            used++;
            s++;
        }
        if (!st && rows > 0) st = tw_llama_forward_multi(m, kv, bseq, btok, NULL, rows, TW_LOGITS_ALL, logits, err);
        for (int32_t t = tmp_seq, k = 0; t < n_seq && k < used; t++)
            if (t != seq) tw_kv_seq_clear(kv, t), k++;
        if (st) break;
        for (int32_t c = c0; c < c1; c++) {
            double sum = 0.0;
            for (int32_t j = 0; j < choice_lens[c]; j++) {
                const float *row = j == 0 ? last : logits + (size_t)(start[c] + j - 1) * (size_t)V;
                double lp = tw_log_softmax_at(row, V, choices[c][j]);
                if (per_token && per_token[c]) per_token[c][j] = lp;
                sum += lp;
            }
            logprobs[c] = sum;
        }
    }
    free(last), free(bseq), free(btok), free(start);
    free(logits);
    return st;
}
