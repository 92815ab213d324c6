/* prompt.c — prompt strategies (zero, kshot, knn, cot, rag), their rendering through a
 * chat template (or the plain layout) as shared prefix + per-example suffix, the label
 * continuations of score / choice, demonstration-set draws, and output parsing.
 * Texts, layouts and rules: prompt.h and docs/prompt.md.
 *
 * The shared prefix is the rendering of the messages every example shares (the system
 * message and kshot's demonstrations) without a generation prompt: for chat templates
 * that render turn by turn it ends right after the last shared turn's end marker
 * (ChatML: "<|im_end|>\n"); for templates that render those turns differently once more
 * follow, it is cut back to the last end-of-turn marker a probe prompt shares with it
 * (turn_cut); in the plain layout it runs to the first per-example "Input:"/"Context:".
 * Each example's rendering must start with it byte for byte (checked per example; one
 * that does not gets prefix_len 0).
 *
 * Deliberately not here: running models, constrained decoding, scoring. */
#include "arms/prompt.h"
#include "arms/features.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- names and params -------------------------------------------------------------- */

static const char *const OUTPUT_NAMES[] = {"free", "choice", "score", "json"};

const char *tw_output_mode_str(tw_output_mode m)
{
    return (unsigned)m < 4 ? OUTPUT_NAMES[m] : "unknown";
}

bool tw_output_mode_parse(const char *s, tw_output_mode *out)
{
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, OUTPUT_NAMES[i])) { *out = (tw_output_mode)i; return true; }
    return false;
}

tw_prompt_params tw_prompt_default_params(void)
{
    tw_prompt_params p = {0};
    p.demos = TW_DEMOS_NONE;
    p.k = 8;
    p.seed = 1;
    p.output = TW_OUTPUT_FREE;
    p.rag_k = 3;
    p.chunk = tw_chunk_default_params();
    p.bm25 = tw_bm25_default_params();
    return p;
}

tw_status tw_prompt_strategy_parse(const char *s, tw_prompt_params *p, tw_error *err)
{
    if (!s || !*s) return tw_error_set(err, TW_ERR_INVALID, "empty strategy: use zero, kshot, knn, cot, rag or a '+' combination");
    tw_prompt_demos demos = TW_DEMOS_NONE;
    bool cot = false, rag = false, have_demos = false;
    const char *q = s;
    while (*q) {
        const char *e = strchr(q, '+');
        size_t n = e ? (size_t)(e - q) : strlen(q);
        tw_prompt_demos d = TW_DEMOS_NONE;
        bool is_demo = false;
        if (n == 4 && !strncmp(q, "zero", 4)) { d = TW_DEMOS_NONE; is_demo = true; }
        else if (n == 5 && !strncmp(q, "kshot", 5)) { d = TW_DEMOS_KSHOT; is_demo = true; }
        else if (n == 3 && !strncmp(q, "knn", 3)) { d = TW_DEMOS_KNN; is_demo = true; }
        else if (n == 3 && !strncmp(q, "cot", 3)) cot = true;
        else if (n == 3 && !strncmp(q, "rag", 3)) rag = true;
        else
            return tw_error_set(err, TW_ERR_INVALID, "strategy '%s': unknown part '%.*s' (zero, kshot, knn, cot, rag)", s,
                                (int)n, q);
        if (is_demo) {
            if (have_demos)
                return tw_error_set(err, TW_ERR_INVALID, "strategy '%s': at most one of zero, kshot, knn", s);
            have_demos = true;
            demos = d;
        }
        q += n;
        if (*q == '+') {
            q++;
            if (!*q) return tw_error_set(err, TW_ERR_INVALID, "strategy '%s': ends with '+'", s);
        }
    }
    p->demos = demos;
    p->cot = cot;
    p->rag = rag;
    return TW_OK;
}

void tw_prompt_strategy_str(const tw_prompt_params *p, char *buf, size_t cap)
{
    const char *d = p->demos == TW_DEMOS_KSHOT ? "kshot" : p->demos == TW_DEMOS_KNN ? "knn" : "zero";
    snprintf(buf, cap, "%s%s%s", d, p->cot ? "+cot" : "", p->rag ? "+rag" : "");
}

/* ---- the prompt object ------------------------------------------------------------- */

struct tw_prompt {
    tw_prompt_params params;
    tw_task_type type;
    const tw_dataset *train;
    tw_prompt_target target;
    char **labels;
    size_t n_labels;
    char *system;
    char *prefix;
    size_t prefix_len;
    char **cont;              /* (n_labels) score / choice */
    size_t n_cont;
    const char *plain_stops[2];
    size_t *kshot;
    size_t n_kshot;
    tw_bm25 *knn;             /* over train inputs */
    char **train_norm;        /* knn: normalized train inputs */
    tw_chunks chunks;
    tw_bm25 *rag;             /* over chunk texts */
};

void tw_prompt_free(tw_prompt *p)
{
    if (!p) return;
    tw_labels_free(p->labels, p->n_labels);
    free(p->system);
    free(p->prefix);
    if (p->cont)
        for (size_t i = 0; i < p->n_cont; i++) free(p->cont[i]);
    free(p->cont);
    free(p->kshot);
    tw_bm25_free(p->knn);
    if (p->train_norm && p->train)
        for (size_t i = 0; i < p->train->n; i++) free(p->train_norm[i]);
    free(p->train_norm);
    tw_chunks_free(&p->chunks);
    tw_bm25_free(p->rag);
    free(p);
}

const char *tw_prompt_system(const tw_prompt *p) { return p->system; }
const char *tw_prompt_prefix(const tw_prompt *p, size_t *len)
{
    if (len) *len = p->prefix_len;
    return p->prefix;
}
const char *const *tw_prompt_labels(const tw_prompt *p, size_t *n)
{
    *n = p->n_labels;
    return (const char *const *)p->labels;
}
const char *const *tw_prompt_continuations(const tw_prompt *p, size_t *n)
{
    *n = p->n_cont;
    return (const char *const *)p->cont;
}
const char *const *tw_prompt_stops(const tw_prompt *p)
{
    if (p->target.tmpl) return tw_chat_template_stops(p->target.tmpl);
    return p->plain_stops;
}
const size_t *tw_prompt_kshot_rows(const tw_prompt *p, size_t *n)
{
    *n = p->n_kshot;
    return p->kshot;
}
const tw_chunks *tw_prompt_chunks(const tw_prompt *p) { return p->params.rag ? &p->chunks : NULL; }
const tw_prompt_params *tw_prompt_get_params(const tw_prompt *p) { return &p->params; }

json_t *tw_prompt_config(const tw_prompt *p)
{
    const tw_prompt_params *pp = &p->params;
    char strat[64], hex[65];
    tw_prompt_strategy_str(pp, strat, sizeof strat);
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = 0;
    bad |= json_object_set_new(o, "strategy", json_string(strat));
    bad |= json_object_set_new(o, "output", json_string(tw_output_mode_str(pp->output)));
    bad |= json_object_set_new(o, "k", json_integer(pp->demos == TW_DEMOS_NONE ? 0 : (json_int_t)pp->k));
    bad |= json_object_set_new(o, "seed", json_integer((json_int_t)pp->seed));
    bad |= json_object_set_new(o, "layout", json_string(p->target.tmpl ? "chat" : "plain"));
    bad |= json_object_set_new(o, "template_family",
                               p->target.tmpl ? json_string(tw_chat_family_name(tw_chat_template_family(p->target.tmpl)))
                                              : json_null());
    tw_sha256(p->system, strlen(p->system), hex);
    bad |= json_object_set_new(o, "system_sha256", json_string(hex));
    tw_sha256(p->prefix, p->prefix_len, hex);
    bad |= json_object_set_new(o, "prefix_sha256", json_string(hex));
    if (pp->demos == TW_DEMOS_KSHOT) {
        json_t *ids = json_array();
        for (size_t i = 0; ids && i < p->n_kshot; i++) {
            const char *id = p->train->rows[p->kshot[i]].id;
            bad |= json_array_append_new(ids, json_string(id ? id : ""));
        }
        bad |= json_object_set_new(o, "kshot_ids", ids);
    }
    if (pp->demos == TW_DEMOS_KNN || pp->rag)
        bad |= json_object_set_new(o, "bm25", json_pack("{s:f,s:f}", "k1", pp->bm25.k1, "b", pp->bm25.b));
    if (pp->rag) {
        tw_buf b = {0};
        for (size_t i = 0; i < p->chunks.n; i++) {
            const tw_chunk *c = &p->chunks.v[i];
            bad |= (int)tw_buf_printf(&b, "%s\n%zu\n%zu\n", c->file, c->line, strlen(c->text));
            bad |= (int)tw_buf_puts(&b, c->text);
        }
        tw_sha256(b.data ? b.data : "", b.len, hex);
        tw_buf_free(&b);
        bad |= json_object_set_new(o, "rag", json_pack("{s:I,s:I,s:I,s:I,s:I,s:s}", "k", (json_int_t)pp->rag_k,
                                                       "max_words", (json_int_t)pp->chunk.max_words, "overlap",
                                                       (json_int_t)pp->chunk.overlap, "files",
                                                       (json_int_t)p->chunks.n_files, "chunks",
                                                       (json_int_t)p->chunks.n, "sha256", hex));
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- texts ------------------------------------------------------------------------- */

#define COT_TAIL "Think step by step, briefly, then write the final answer on the last line in the form:\nAnswer: "

/* Trim trailing whitespace of a heap string in place. */
static void rtrim(char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
}

static tw_status system_text(tw_prompt *p, const tw_task *t, tw_error *err)
{
    tw_buf b = {0};
    tw_status st = TW_OK;
    const char *instr = t->instructions;
    char *schema = NULL;
    if (t->type == TW_TASK_EXTRACT && t->schema_path && !p->params.short_system) {
        size_t len;
        if ((st = tw_file_read(t->schema_path, &schema, &len, err))) return st;
        rtrim(schema);
    }
    if (p->params.short_system) {
        st |= tw_buf_puts(&b, instr && *instr ? instr : t->type == TW_TASK_CLASSIFY ? "Classify the input."
                                                       : t->type == TW_TASK_EXTRACT ? "Extract the information in the input."
                                                                                      : "Respond to the input.");
    } else if (t->type == TW_TASK_CLASSIFY) {
        st |= tw_buf_puts(&b, instr && *instr ? instr : "Classify the input into one of the labels below.");
        st |= tw_buf_puts(&b, "\n\nLabels:");
        for (size_t i = 0; i < p->n_labels; i++) st |= tw_buf_printf(&b, "\n%s", p->labels[i]);
    } else if (t->type == TW_TASK_EXTRACT) {
        st |= tw_buf_puts(&b, instr && *instr ? instr : "Extract the information in the input as a JSON object.");
        if (schema) st |= tw_buf_printf(&b, "\n\nThe answer is a JSON object valid under this JSON Schema:\n%s", schema);
    } else {
        st |= tw_buf_puts(&b, instr && *instr ? instr : "Respond to the input.");
    }
    if (p->params.rag)
        st |= tw_buf_puts(&b, "\n\nEach input comes with context passages; use them when they are relevant.");
    if (p->params.cot) {
        st |= tw_buf_puts(&b, "\n\n" COT_TAIL);
        st |= tw_buf_puts(&b, t->type == TW_TASK_CLASSIFY ? "<label>" : t->type == TW_TASK_EXTRACT ? "<JSON object>"
                                                                                              : "<answer>");
    } else if (t->type == TW_TASK_CLASSIFY && !p->params.short_system) {
        st |= tw_buf_puts(&b, "\n\nAnswer with exactly one label from the list, written as it appears there.");
    } else if (t->type == TW_TASK_EXTRACT && !p->params.short_system) {
        st |= tw_buf_puts(&b, "\n\nAnswer with the JSON object only.");
    }
    free(schema);
    if (st) {
        tw_buf_free(&b);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory building the system prompt");
    }
    p->system = tw_buf_steal(&b);
    return TW_OK;
}

/* The user turn of an input: the input itself. The example's own turn under rag first has
 * a context block (also when no passage matched, so every example's turn starts alike).
 * The plain layout writes "Input: " before the input (the chat layout needs no label). */
static tw_status user_text(const tw_prompt *p, const char *input, bool context, const size_t *pass, size_t n_pass,
                           tw_buf *b)
{
    bool plain = !p->target.tmpl;
    tw_status st = TW_OK;
    if (context) {
        st |= tw_buf_puts(b, "Context:");
        if (n_pass == 0) st |= tw_buf_puts(b, " (no passages found)");
        for (size_t i = 0; i < n_pass; i++) {
            const tw_chunk *c = &p->chunks.v[pass[i]];
            st |= tw_buf_printf(b, "%s[%zu] %s:%zu\n%s", plain && i == 0 ? " " : "\n\n", i + 1, c->file, c->line,
                                c->text);
        }
        st |= tw_buf_puts(b, plain ? "\n\nInput: " : "\n\nInput:\n");
    } else if (plain) {
        st |= tw_buf_puts(b, "Input: ");
    }
    st |= tw_buf_puts(b, input ? input : "");
    return st ? TW_ERR_NOMEM : TW_OK;
}

/* The assistant turn of a demonstration: its output ("Answer: <output>" with cot). */
static tw_status demo_answer(const tw_prompt *p, const char *output, tw_buf *b)
{
    tw_status st = TW_OK;
    if (p->params.cot) st |= tw_buf_puts(b, "Answer: ");
    st |= tw_buf_puts(b, output ? output : "");
    return st ? TW_ERR_NOMEM : TW_OK;
}

/* Plain layout: system, then "\n\n<user>\nAnswer: <assistant>" per pair, then the last
 * user turn and "\nAnswer:" (cot: "\n", the model writes its reasoning). msgs[0] is the
 * system message; the rest alternate user/assistant and end with user when gen. */
static tw_status render_plain(const tw_prompt *p, const tw_chat_msg *m, size_t n, bool gen, tw_buf *out)
{
    tw_status st = tw_buf_puts(out, m[0].content);
    for (size_t i = 1; i < n; i++) {
        if (!strcmp(m[i].role, "user")) {
            st |= tw_buf_printf(out, "\n\n%s\n", m[i].content);
        } else {
            /* cot demos already say "Answer: ..." */
            st |= tw_buf_printf(out, "%s%s", p->params.cot ? "" : "Answer: ", m[i].content);
        }
    }
    if (gen && !p->params.cot) st |= tw_buf_puts(out, "Answer:");
    return st ? TW_ERR_NOMEM : TW_OK;
}

static tw_status render(const tw_prompt *p, const tw_chat_msg *m, size_t n, bool gen, tw_buf *out, tw_error *err)
{
    if (!p->target.tmpl) {
        if (render_plain(p, m, n, gen, out)) return tw_error_set(err, TW_ERR_NOMEM, "out of memory rendering a prompt");
        return TW_OK;
    }
    return tw_chat_render(p->target.tmpl, m, n, gen, p->target.bos, p->target.eos, out, err);
}

/* ---- demonstration sets ------------------------------------------------------------ */

uint64_t tw_prompt_demo_seed(uint64_t base, size_t i)
{
    return i == 0 ? base : tw_hash_mix(base + (uint64_t)i * 0x9E3779B97F4A7C15ULL);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

tw_status tw_prompt_kshot_select(const tw_dataset *train, bool stratify, size_t k, uint64_t seed, size_t *rows,
                                 size_t *n_out, tw_error *err)
{
    *n_out = 0;
    size_t n = train->n;
    if (k > n) k = n;
    if (k == 0) return TW_OK;
    tw_rng rng;
    tw_rng_seed(&rng, seed);
    if (!stratify) {
        size_t *all = tw_malloc(n * sizeof *all, err);
        if (!all) return TW_ERR_NOMEM;
        for (size_t i = 0; i < n; i++) all[i] = i;
        for (size_t i = 0; i < k; i++) {   /* partial Fisher-Yates */
            size_t j = i + (size_t)tw_rng_below(&rng, n - i);
            size_t tmp = all[i]; all[i] = all[j]; all[j] = tmp;
        }
        memcpy(rows, all, k * sizeof *rows);
        free(all);
        *n_out = k;
        return TW_OK;
    }
    /* classes in byte order of their label; rows of each class in file order */
    tw_str_index ix = {0};
    const char **names = tw_malloc(n * sizeof *names, err);
    size_t *cls = tw_malloc(n * sizeof *cls, err);
    size_t *count = tw_calloc(n, sizeof *count, err), *start = tw_calloc(n + 1, sizeof *start, err);
    size_t *byc = tw_malloc(n * sizeof *byc, err), *order = tw_malloc(n * sizeof *order, err);
    size_t *quota = tw_calloc(n, sizeof *quota, err), *fill = tw_calloc(n, sizeof *fill, err);
    tw_status st = TW_OK;
    if (!names || !cls || !count || !start || !byc || !order || !quota || !fill) { st = TW_ERR_NOMEM; goto done; }
    size_t C = 0;
    for (size_t i = 0; i < n; i++) {
        const char *o = train->rows[i].output ? train->rows[i].output : "";
        bool found;
        size_t v;
        if ((st = tw_str_index_put(&ix, o, C, &found, &v, err))) goto done;
        if (!found) names[C++] = o;
    }
    qsort(names, C, sizeof *names, cmp_str_ptr);
    tw_str_index_free(&ix);
    for (size_t c = 0; c < C; c++)
        if ((st = tw_str_index_put(&ix, names[c], c, NULL, NULL, err))) goto done;
    for (size_t i = 0; i < n; i++) {
        tw_str_index_get(&ix, train->rows[i].output ? train->rows[i].output : "", &cls[i]);
        count[cls[i]]++;
    }
    for (size_t c = 0; c < C; c++) start[c + 1] = start[c] + count[c];
    for (size_t i = 0; i < n; i++) byc[start[cls[i]] + fill[cls[i]]++] = i;
    /* class order: a seeded shuffle; quotas */
    for (size_t c = 0; c < C; c++) order[c] = c;
    tw_rng_shuffle(&rng, order, C, sizeof *order);
    size_t base = k / C, rem = k % C, given = 0;
    for (size_t j = 0; j < C; j++) {
        size_t c = order[j];
        size_t q = base + (j < rem ? 1 : 0);
        quota[c] = q < count[c] ? q : count[c];
        given += quota[c];
    }
    /* short classes: hand the rest out one at a time in the same order */
    while (given < k) {
        bool any = false;
        for (size_t j = 0; j < C && given < k; j++) {
            size_t c = order[j];
            if (quota[c] < count[c]) { quota[c]++; given++; any = true; }
        }
        if (!any) break;
    }
    size_t m = 0;
    for (size_t j = 0; j < C; j++) {
        size_t c = order[j];
        size_t *r = byc + start[c];
        for (size_t i = 0; i < quota[c]; i++) {   /* partial Fisher-Yates inside the class */
            size_t x = i + (size_t)tw_rng_below(&rng, count[c] - i);
            size_t tmp = r[i]; r[i] = r[x]; r[x] = tmp;
            rows[m++] = r[i];
        }
    }
    tw_rng_shuffle(&rng, rows, m, sizeof *rows);
    *n_out = m;
done:
    tw_str_index_free(&ix);
    free(names); free(cls); free(count); free(start); free(byc); free(order); free(quota); free(fill);
    if (st == TW_ERR_NOMEM) tw_error_set(err, st, "out of memory drawing demonstrations");
    return st;
}

tw_status tw_prompt_demo_set(const tw_dataset *train, bool stratify, size_t k, uint64_t base_seed, size_t i,
                             size_t n, size_t *rows, size_t *n_out, tw_error *err)
{
    if (i >= n) return tw_error_set(err, TW_ERR_INVALID, "demonstration set %zu of %zu: index out of range", i, n);
    return tw_prompt_kshot_select(train, stratify, k, tw_prompt_demo_seed(base_seed, i), rows, n_out, err);
}

/* ---- construction ------------------------------------------------------------------ */

static char *normalized(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    char *o = malloc(n + 1);
    if (!o) return NULL;
    size_t m = tw_normalize_text(s ? s : "", n, o);
    o[m] = '\0';
    return o;
}

/* Messages: system, then demos as user/assistant pairs. Content strings are appended to
 * owned (each heap). */
typedef struct msg_list {
    tw_chat_msg *m;
    size_t n, cap;
    char **owned;
    size_t n_owned, cap_owned;
} msg_list;

static void msg_list_free(msg_list *l)
{
    for (size_t i = 0; i < l->n_owned; i++) free(l->owned[i]);
    free(l->owned);
    free(l->m);
    memset(l, 0, sizeof *l);
}

static tw_status msg_push(msg_list *l, const char *role, tw_buf *content, const char *borrowed)
{
    if (tw_grow((void **)&l->m, &l->cap, l->n + 1, sizeof *l->m, NULL)) return TW_ERR_NOMEM;
    const char *c = borrowed;
    if (content) {
        if (tw_grow((void **)&l->owned, &l->cap_owned, l->n_owned + 1, sizeof *l->owned, NULL)) return TW_ERR_NOMEM;
        char *s = content->data ? tw_buf_steal(content) : strdup("");
        if (!s) return TW_ERR_NOMEM;
        l->owned[l->n_owned++] = s;
        c = s;
    }
    l->m[l->n++] = (tw_chat_msg){role, c};
    return TW_OK;
}

static tw_status push_demos(const tw_prompt *p, msg_list *l, const size_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const tw_example *d = &p->train->rows[rows[i]];
        tw_buf u = {0}, a = {0};
        if (user_text(p, d->input, false, NULL, 0, &u) || msg_push(l, "user", &u, NULL) || demo_answer(p, d->output, &a) ||
            msg_push(l, "assistant", &a, NULL)) {
            tw_buf_free(&u);
            tw_buf_free(&a);
            return TW_ERR_NOMEM;
        }
    }
    return TW_OK;
}

static tw_status make_continuations(tw_prompt *p, tw_error *err)
{
    p->cont = tw_calloc(p->n_labels ? p->n_labels : 1, sizeof *p->cont, err);
    if (!p->cont) return TW_ERR_NOMEM;
    p->n_cont = p->n_labels;
    for (size_t i = 0; i < p->n_labels; i++) {
        tw_buf b = {0};
        if (!p->target.tmpl) {
            if (tw_buf_printf(&b, " %s\n", p->labels[i])) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        } else {
            /* the template's own rendering of the answer, located by the span API */
            tw_chat_msg m[3] = {{"system", p->system}, {"user", "x"}, {"assistant", p->labels[i]}};
            tw_chat_opts o = tw_chat_default_opts();
            o.bos_token = p->target.bos;
            o.eos_token = p->target.eos;
            tw_buf r = {0};
            tw_chat_span sp;
            tw_status st = tw_chat_render_span(p->target.tmpl, m, 3, &o, &r, &sp, err);
            if (st) {
                tw_buf_free(&r);
                return tw_error_prefix(err, "label continuation of '%s': ", p->labels[i]);
            }
            st = tw_buf_append(&b, r.data + sp.prompt_end, sp.turn_end - sp.prompt_end);
            tw_buf_free(&r);
            if (st) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        }
        p->cont[i] = tw_buf_steal(&b);
    }
    return TW_OK;
}

/* When the rendering of the shared turns alone is not a prefix of a whole prompt (Qwen3
 * adds an empty <think> block to an assistant turn after the last user turn, Llama 3
 * templates that always end with the assistant header), the longest common prefix of the
 * two, cut back to just after the last end-of-turn marker in it (plus one '\n' when the
 * template writes one there): still a turn boundary, still the same for every example. */
static size_t turn_cut(const tw_chat_template *t, const char *a, size_t na, const char *b, size_t nb)
{
    size_t lcp = 0;
    while (lcp < na && lcp < nb && a[lcp] == b[lcp]) lcp++;
    size_t cut = 0;
    const char *const *stops = tw_chat_template_stops(t);
    for (size_t i = 0; stops && stops[i]; i++) {
        size_t m = strlen(stops[i]);
        for (size_t e = lcp; e >= m && e > cut; e--)
            if (!memcmp(a + e - m, stops[i], m)) {
                cut = e;
                break;
            }
    }
    if (cut && cut < lcp && a[cut] == '\n') cut++;
    return cut;
}

tw_status tw_prompt_new(tw_prompt **out, const tw_task *task, const tw_dataset *train, const tw_prompt_params *pp,
                        const tw_prompt_target *target, tw_error *err)
{
    *out = NULL;
    tw_prompt_params def = tw_prompt_default_params();
    if (!pp) pp = &def;
    tw_task_type ty = task->type;
    tw_output_mode om = pp->output;
    if ((unsigned)om > TW_OUTPUT_JSON) return tw_error_set(err, TW_ERR_INVALID, "unknown output mode %d", (int)om);
    if ((om == TW_OUTPUT_CHOICE || om == TW_OUTPUT_SCORE) && ty != TW_TASK_CLASSIFY)
        return tw_error_set(err, TW_ERR_INVALID, "output '%s' needs a classify task (this one is %s)",
                            tw_output_mode_str(om), tw_task_type_str(ty));
    if ((om == TW_OUTPUT_CHOICE || om == TW_OUTPUT_SCORE) && pp->cot)
        return tw_error_set(err, TW_ERR_INVALID, "output '%s' cannot follow cot reasoning: use free with cot",
                            tw_output_mode_str(om));
    if (om == TW_OUTPUT_JSON && ty != TW_TASK_EXTRACT)
        return tw_error_set(err, TW_ERR_INVALID, "output 'json' needs an extract task (this one is %s)",
                            tw_task_type_str(ty));
    if (pp->demos != TW_DEMOS_NONE && pp->k > 0 && (!train || train->n == 0))
        return tw_error_set(err, TW_ERR_INVALID, "strategy %s needs training rows", pp->demos == TW_DEMOS_KNN ? "knn" : "kshot");
    if (pp->rag && (!pp->rag_dir || !*pp->rag_dir))
        return tw_error_set(err, TW_ERR_INVALID, "strategy rag needs a document folder");
    if (pp->rag && pp->rag_k == 0) return tw_error_set(err, TW_ERR_INVALID, "strategy rag needs rag_k >= 1");

    tw_prompt *p = tw_calloc(1, sizeof *p, err);
    if (!p) return TW_ERR_NOMEM;
    p->params = *pp;
    p->params.rag_dir = NULL;
    p->params.bm25.stopwords = NULL;
    p->type = ty;
    p->train = train;
    if (target) p->target = *target;
    p->plain_stops[0] = pp->cot ? "\n\nInput:" : "\n";
    p->plain_stops[1] = NULL;
    tw_status st = TW_OK;
    msg_list l = {0};
    tw_buf b = {0};

    if (ty == TW_TASK_CLASSIFY) {
        if (task->n_labels) {
            p->labels = tw_calloc(task->n_labels, sizeof *p->labels, err);
            if (!p->labels) { st = TW_ERR_NOMEM; goto fail; }
            p->n_labels = task->n_labels;
            for (size_t i = 0; i < task->n_labels; i++)
                if (!(p->labels[i] = tw_strdup(task->labels[i], err))) { st = TW_ERR_NOMEM; goto fail; }
        } else if (train && train->n) {
            if ((st = tw_dataset_labels(train, &p->labels, &p->n_labels, err))) goto fail;
        }
        if (p->n_labels == 0) {
            st = tw_error_set(err, TW_ERR_INVALID, "classify task '%s' has no labels (none declared, no training rows)",
                              task->name ? task->name : "");
            goto fail;
        }
    }
    if ((st = system_text(p, task, err))) goto fail;

    if (pp->demos == TW_DEMOS_KSHOT && pp->k > 0) {
        p->kshot = tw_malloc(pp->k * sizeof *p->kshot, err);
        if (!p->kshot) { st = TW_ERR_NOMEM; goto fail; }
        if ((st = tw_prompt_kshot_select(train, ty == TW_TASK_CLASSIFY, pp->k, pp->seed, p->kshot, &p->n_kshot, err)))
            goto fail;
    }
    if (pp->demos == TW_DEMOS_KNN && pp->k > 0) {
        const char **texts = tw_malloc(train->n * sizeof *texts, err);
        p->train_norm = tw_calloc(train->n, sizeof *p->train_norm, err);
        if (!texts || !p->train_norm) { free(texts); st = TW_ERR_NOMEM; goto fail; }
        for (size_t i = 0; i < train->n; i++) {
            texts[i] = train->rows[i].input;
            if (!(p->train_norm[i] = normalized(train->rows[i].input))) {
                free(texts);
                st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
                goto fail;
            }
        }
        tw_bm25_params bp = pp->bm25;
        st = tw_bm25_build(&p->knn, texts, train->n, &bp, err);
        free(texts);
        if (st) goto fail;
    }
    if (pp->rag) {
        if ((st = tw_chunk_dir(&p->chunks, pp->rag_dir, &pp->chunk, err))) goto fail;
        const char **texts = tw_malloc((p->chunks.n ? p->chunks.n : 1) * sizeof *texts, err);
        if (!texts) { st = TW_ERR_NOMEM; goto fail; }
        for (size_t i = 0; i < p->chunks.n; i++) texts[i] = p->chunks.v[i].text;
        tw_bm25_params bp = pp->bm25;
        st = tw_bm25_build(&p->rag, texts, p->chunks.n, &bp, err);
        free(texts);
        if (st) goto fail;
    }

    /* the shared prefix: system + kshot demos, no generation prompt */
    if ((st = msg_push(&l, "system", NULL, p->system))) goto nomem;
    if ((st = push_demos(p, &l, p->kshot, p->n_kshot))) goto nomem;
    if ((st = render(p, l.m, l.n, false, &b, err))) goto fail;
    /* plain layout: the prefix runs to the ':' of the example's first label, so the suffix
     * starts with a space — a split every byte-level pre-tokenizer keeps (a prefix ending
     * in punctuation before "\n\n" would merge with it under Llama 3's / Qwen's regex).
     * An example whose first turn differs (knn that found no demonstration) gets
     * prefix_len 0 below. */
    if (!p->target.tmpl) {
        /* the first per-example turn: a knn demonstration, else the example's own */
        bool ctx_first = pp->rag && !(pp->demos == TW_DEMOS_KNN && pp->k > 0);
        if ((st = tw_buf_puts(&b, ctx_first ? "\n\nContext:" : "\n\nInput:"))) goto nomem;
    }
    /* a probe example (with one knn demonstration when knn) must start with it, else the
     * template cannot be split here */
    {
        tw_buf full = {0}, u = {0}, du = {0}, da = {0};
        if (pp->demos == TW_DEMOS_KNN && pp->k > 0 &&
            ((st = user_text(p, "x", false, NULL, 0, &du)) || (st = msg_push(&l, "user", &du, NULL)) ||
             (st = demo_answer(p, "y", &da)) || (st = msg_push(&l, "assistant", &da, NULL)))) {
            tw_buf_free(&du);
            tw_buf_free(&da);
            goto nomem;
        }
        if ((st = user_text(p, "x", p->params.rag, NULL, 0, &u)) || (st = msg_push(&l, "user", &u, NULL))) {
            tw_buf_free(&u);
            goto nomem;
        }
        st = render(p, l.m, l.n, true, &full, err);
        if (st) {
            tw_buf_free(&full);
            goto fail;
        }
        bool ok = full.len >= b.len && (b.len == 0 || !memcmp(full.data, b.data, b.len));
        if (!ok && p->target.tmpl) b.len = turn_cut(p->target.tmpl, b.data, b.len, full.data, full.len);
        else if (!ok) b.len = 0;
        tw_buf_free(&full);
    }
    p->prefix_len = b.len;
    p->prefix = b.len ? tw_buf_steal(&b) : tw_strdup("", err);
    if (!p->prefix) goto nomem;
    if ((pp->output == TW_OUTPUT_SCORE || pp->output == TW_OUTPUT_CHOICE) && (st = make_continuations(p, err)))
        goto fail;
    msg_list_free(&l);
    tw_buf_free(&b);
    *out = p;
    return TW_OK;
nomem:
    st = tw_error_set(err, TW_ERR_NOMEM, "out of memory preparing prompts");
fail:
    msg_list_free(&l);
    tw_buf_free(&b);
    tw_prompt_free(p);
    return st;
}

/* ---- per example ------------------------------------------------------------------- */

void tw_prompt_example_free(tw_prompt_example *e)
{
    if (!e) return;
    tw_buf_free(&e->text);
    free(e->msgs);
    free(e->demo_rows);
    free(e->passages);
    for (size_t i = 0; i < e->n_owned; i++) free(e->owned[i]);
    free(e->owned);
    memset(e, 0, sizeof *e);
}

typedef struct knn_skip {
    const tw_prompt *p;
    const char *id;
    const char *norm;
} knn_skip;

static bool knn_skip_fn(size_t doc, void *user)
{
    const knn_skip *s = user;
    const tw_example *r = &s->p->train->rows[doc];
    if (s->id && r->id && !strcmp(s->id, r->id)) return true;
    return !strcmp(s->norm, s->p->train_norm[doc]);
}

tw_status tw_prompt_build(const tw_prompt *p, const tw_example *ex, tw_prompt_example *out, tw_error *err)
{
    tw_prompt_example_free(out);
    msg_list l = {0};
    tw_status st = TW_OK;
    size_t *rows = NULL, n_rows = 0, *pass = NULL, n_pass = 0;
    if (p->params.demos == TW_DEMOS_KSHOT && p->n_kshot) {
        rows = tw_malloc(p->n_kshot * sizeof *rows, err);
        if (!rows) return TW_ERR_NOMEM;
        memcpy(rows, p->kshot, p->n_kshot * sizeof *rows);
        n_rows = p->n_kshot;
    } else if (p->params.demos == TW_DEMOS_KNN && p->knn) {
        size_t k = p->params.k;
        rows = tw_malloc(k * sizeof *rows, err);
        char *norm = normalized(ex->input);
        if (!rows || !norm) {
            free(rows);
            free(norm);
            return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        }
        knn_skip sk = {p, ex->id, norm};
        st = tw_bm25_query(p->knn, ex->input, k, TW_BM25_NO_DOC, knn_skip_fn, &sk, rows, NULL, &n_rows, err);
        free(norm);
        if (st) { free(rows); return st; }
        /* most similar last: nearest to the question */
        for (size_t i = 0; i < n_rows / 2; i++) {
            size_t t = rows[i]; rows[i] = rows[n_rows - 1 - i]; rows[n_rows - 1 - i] = t;
        }
    }
    if (p->params.rag && p->rag && p->chunks.n) {
        pass = tw_malloc(p->params.rag_k * sizeof *pass, err);
        if (!pass) { free(rows); return TW_ERR_NOMEM; }
        if ((st = tw_bm25_query(p->rag, ex->input, p->params.rag_k, TW_BM25_NO_DOC, NULL, NULL, pass, NULL, &n_pass,
                                err))) {
            free(rows);
            free(pass);
            return st;
        }
    }
    tw_buf u = {0};
    if (msg_push(&l, "system", NULL, p->system) || push_demos(p, &l, rows, n_rows) ||
        user_text(p, ex->input, p->params.rag, pass, n_pass, &u) || msg_push(&l, "user", &u, NULL)) {
        tw_buf_free(&u);
        st = tw_error_set(err, TW_ERR_NOMEM, "out of memory building a prompt");
        goto fail;
    }
    if ((st = render(p, l.m, l.n, true, &out->text, err))) {
        tw_error_prefix(err, "example %s: ", ex->id ? ex->id : "?");
        goto fail;
    }
    if (!out->text.data && (st = tw_buf_reserve(&out->text, 1))) goto fail;
    out->text.data[out->text.len] = '\0';
    out->prefix_len = (p->prefix_len && out->text.len >= p->prefix_len &&
                       !memcmp(out->text.data, p->prefix, p->prefix_len)) ? p->prefix_len : 0;
    out->msgs = l.m;
    out->n_msgs = l.n;
    out->owned = l.owned;
    out->n_owned = l.n_owned;
    out->demo_rows = rows;
    out->n_demos = n_rows;
    out->passages = pass;
    out->n_passages = n_pass;
    return TW_OK;
fail:
    msg_list_free(&l);
    free(rows);
    free(pass);
    tw_buf_free(&out->text);
    return st;
}

/* ---- parsing ----------------------------------------------------------------------- */

void tw_parsed_free(tw_parsed *p)
{
    if (!p) return;
    free(p->value);
    p->value = NULL;
    p->valid = false;
}

static inline bool ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static void trim_span(const char **s, size_t *n)
{
    while (*n && ws((unsigned char)**s)) { (*s)++; (*n)--; }
    while (*n && ws((unsigned char)(*s)[*n - 1])) (*n)--;
}

static bool has_prefix(const char *s, size_t n, const char *p)
{
    size_t m = strlen(p);
    return n >= m && !memcmp(s, p, m);
}

static bool has_suffix(const char *s, size_t n, const char *p)
{
    size_t m = strlen(p);
    return n >= m && !memcmp(s + n - m, p, m);
}

/* Strip fences, wrappers and trailing punctuation: returns a span inside raw. */
static void clean_span(const char **s, size_t *n)
{
    trim_span(s, n);
    if (has_prefix(*s, *n, "```")) {
        const char *nl = memchr(*s, '\n', *n);
        size_t cut = nl ? (size_t)(nl - *s) + 1 : 3;
        *s += cut;
        *n -= cut;
        if (has_suffix(*s, *n, "```")) *n -= 3;
        trim_span(s, n);
    }
    static const char *const PAIRS[][2] = {
        {"**", "**"}, {"__", "__"}, {"`", "`"}, {"\"", "\""}, {"'", "'"}, {"*", "*"}, {"_", "_"},
        {"\xe2\x80\x9c", "\xe2\x80\x9d"}, {"\xe2\x80\x98", "\xe2\x80\x99"}, {"\xc2\xab", "\xc2\xbb"},
        {"(", ")"}, {"[", "]"}, {"<", ">"},
    };
    for (bool again = true; again;) {
        again = false;
        while (*n && strchr(".,;!", (*s)[*n - 1])) { (*n)--; again = true; }
        trim_span(s, n);
        for (size_t i = 0; i < sizeof PAIRS / sizeof PAIRS[0]; i++) {
            size_t a = strlen(PAIRS[i][0]), b = strlen(PAIRS[i][1]);
            if (*n >= a + b && has_prefix(*s, *n, PAIRS[i][0]) && has_suffix(*s, *n, PAIRS[i][1])) {
                *s += a;
                *n -= a + b;
                trim_span(s, n);
                again = true;
                break;
            }
        }
    }
}

/* Fold: lowercase code points (tw_feat_lower). loose: also runs of whitespace, '_' and
 * '-' become one space, trimmed. Heap string. */
static char *fold(const char *s, size_t n, bool loose)
{
    char *o = malloc(4 * n + 1);
    if (!o) return NULL;
    size_t m = 0, i = 0;
    bool pending_space = false;
    while (i < n) {
        uint32_t cp;
        int k = tw_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        i += (size_t)k;
        if (loose && (cp == '_' || cp == '-' || (cp < 0x80 && ws((unsigned char)cp)))) {
            pending_space = m > 0;
            continue;
        }
        if (pending_space) { o[m++] = ' '; pending_space = false; }
        m += (size_t)tw_utf8_encode(tw_feat_lower(cp), o + m);
    }
    o[m] = '\0';
    return o;
}

static inline bool word_byte(unsigned char c) { return isalnum(c) || c >= 0x80; }

tw_status tw_parse_label(const char *raw, const char *const *labels, size_t n_labels, tw_parsed *out, tw_error *err)
{
    out->value = NULL;
    out->valid = false;
    const char *s = raw ? raw : "";
    size_t n = strlen(s);
    clean_span(&s, &n);
    tw_status st = TW_OK;
    char **lf = NULL, **ll = NULL, *tf = NULL, *tl = NULL;
    long found = -1;
    /* 1: byte-exact */
    for (size_t i = 0; i < n_labels && found < 0; i++)
        if (strlen(labels[i]) == n && !memcmp(labels[i], s, n)) found = (long)i;
    if (found < 0) {
        lf = calloc(n_labels ? n_labels : 1, sizeof *lf);
        ll = calloc(n_labels ? n_labels : 1, sizeof *ll);
        tf = fold(s, n, false);
        tl = fold(s, n, true);
        if (!lf || !ll || !tf || !tl) goto nomem;
        for (size_t i = 0; i < n_labels; i++) {
            lf[i] = fold(labels[i], strlen(labels[i]), false);
            ll[i] = fold(labels[i], strlen(labels[i]), true);
            if (!lf[i] || !ll[i]) goto nomem;
        }
        /* 2, 3: unique folded / loose match */
        for (int pass = 0; pass < 2 && found < 0; pass++) {
            char **L = pass ? ll : lf;
            const char *T = pass ? tl : tf;
            size_t hits = 0;
            long which = -1;
            for (size_t i = 0; i < n_labels; i++)
                if (!strcmp(L[i], T)) { hits++; which = (long)i; }
            if (hits == 1) found = which;
            else if (hits > 1) break;   /* labels equal after folding: ambiguous */
        }
        if (found < 0 && *tl) {
            /* 4: contained at word boundaries; a match inside a longer match does not count */
            size_t tn = strlen(tl);
            size_t nocc = 0, cap = 0;
            struct occ { size_t b, e, lab; } *occ = NULL;
            for (size_t i = 0; i < n_labels; i++) {
                size_t m = strlen(ll[i]);
                if (!m) continue;
                for (const char *h = tl; (h = strstr(h, ll[i])) != NULL; h++) {
                    size_t b = (size_t)(h - tl), e = b + m;
                    if ((b > 0 && word_byte((unsigned char)tl[b - 1]) && word_byte((unsigned char)tl[b])) ||
                        (e < tn && word_byte((unsigned char)tl[e]) && word_byte((unsigned char)tl[e - 1])))
                        continue;
                    if (tw_grow((void **)&occ, &cap, nocc + 1, sizeof *occ, NULL)) { free(occ); goto nomem; }
                    occ[nocc++] = (struct occ){b, e, i};
                }
            }
            long winner = -1;
            bool ambiguous = false;
            for (size_t a = 0; a < nocc; a++) {
                bool inside = false;
                for (size_t c = 0; c < nocc && !inside; c++)
                    if (c != a && occ[c].e - occ[c].b > occ[a].e - occ[a].b && occ[c].b <= occ[a].b &&
                        occ[a].e <= occ[c].e)
                        inside = true;
                if (inside) continue;
                if (winner < 0) winner = (long)occ[a].lab;
                else if ((size_t)winner != occ[a].lab) ambiguous = true;
            }
            free(occ);
            if (winner >= 0 && !ambiguous) found = winner;
        }
    }
    if (found >= 0) {
        out->value = tw_strdup(labels[found], err);
        out->valid = true;
    } else {
        out->value = tw_strndup(s, n, err);
    }
    if (!out->value) st = TW_ERR_NOMEM;
    goto done;
nomem:
    st = tw_error_set(err, TW_ERR_NOMEM, "out of memory parsing a label");
done:
    if (lf)
        for (size_t i = 0; i < n_labels; i++) free(lf[i]);
    if (ll)
        for (size_t i = 0; i < n_labels; i++) free(ll[i]);
    free(lf);
    free(ll);
    free(tf);
    free(tl);
    return st;
}

/* End of the balanced object starting at s[0] == '{' (index of its '}'), or n. */
static size_t balanced_end(const char *s, size_t n)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0) return c == '}' ? i : n;
            if (depth < 0) return n;
        }
    }
    return n;
}

tw_status tw_parse_json_object(const char *raw, tw_parsed *out, tw_error *err)
{
    out->value = NULL;
    out->valid = false;
    const char *s = raw ? raw : "";
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '{') continue;
        size_t e = balanced_end(s + i, n - i);
        if (e == n - i) continue;
        json_error_t je;
        json_t *v = json_loadb(s + i, e + 1, 0, &je);
        bool obj = v && json_is_object(v);
        json_decref(v);
        if (obj) {
            out->value = tw_strndup(s + i, e + 1, err);
            out->valid = true;
            return out->value ? TW_OK : TW_ERR_NOMEM;
        }
    }
    trim_span(&s, &n);
    out->value = tw_strndup(s, n, err);
    return out->value ? TW_OK : TW_ERR_NOMEM;
}

char *tw_parse_cot_answer(const char *raw)
{
    if (!raw) return NULL;
    const char *best = NULL;
    for (const char *line = raw; line && *line;) {
        const char *q = line;
        while (*q == ' ' || *q == '\t' || *q == '*' || *q == '#' || *q == '>' || *q == '_') q++;
        if (!strncasecmp(q, "final ", 6)) q += 6;
        if (!strncasecmp(q, "answer", 6)) {
            const char *r = q + 6;
            while (*r == '*' || *r == ' ' || *r == '_') r++;
            if (*r == ':') {
                r++;
                while (*r == '*' || *r == '_') r++;   /* "**Answer:** x" */
                best = r;
            }
        }
        const char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    if (!best) return NULL;
    size_t n = strlen(best);
    trim_span(&best, &n);
    return strndup(best, n);
}

tw_status tw_prompt_parse(const tw_prompt *p, const char *raw, tw_parsed *out, tw_error *err)
{
    char *ans = p->params.cot ? tw_parse_cot_answer(raw) : NULL;
    const char *text = ans ? ans : raw ? raw : "";
    tw_status st;
    if (p->type == TW_TASK_CLASSIFY) {
        st = tw_parse_label(text, (const char *const *)p->labels, p->n_labels, out, err);
    } else if (p->type == TW_TASK_EXTRACT) {
        st = tw_parse_json_object(text, out, err);
    } else {
        const char *s = text;
        size_t n = strlen(s);
        trim_span(&s, &n);
        out->value = tw_strndup(s, n, err);
        out->valid = n > 0;
        st = out->value ? TW_OK : TW_ERR_NOMEM;
    }
    free(ans);
    return st;
}

/* ---- token boundary ---------------------------------------------------------------- */

tw_status tw_prompt_check_tokens(const tw_tokenizer *tok, const char *text, size_t len, size_t prefix_len, bool *ok,
                                 tw_error *err)
{
    *ok = false;
    if (prefix_len > len) return tw_error_set(err, TW_ERR_INVALID, "prefix longer than the prompt");
    tw_tok_ids a = {0}, b = {0};
    tw_status st = tw_tokenize_append(tok, text, prefix_len, TW_TOK_DEFAULT, &a, err);
    if (!st) st = tw_tokenize_append(tok, text, len, TW_TOK_DEFAULT, &b, err);
    if (!st) *ok = a.n <= b.n && (a.n == 0 || !memcmp(a.v, b.v, a.n * sizeof *a.v));
    tw_tok_ids_free(&a);
    tw_tok_ids_free(&b);
    return st;
}
