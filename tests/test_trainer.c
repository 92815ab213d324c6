/* test_trainer.c — the LoRA trainer (src/train/trainer.h) end to end on the real
 * stories260K weights (../shared/models/stories260K, vocab 512, no chat template: the
 * prompt arm's plain layout) with a synthetic classification task written to a temp dir:
 * each input is a few filler words and one keyword, "sun" or "rain", and the label is that
 * keyword. Checks: the loss falls and dev accuracy (label scoring through the shared
 * scorer) rises above the untuned model's; outputs exist and load; two runs give
 * bitwise-identical adapters; a run killed with SIGKILL (twice) and resumed ends with the
 * same adapter bytes as an uninterrupted run; resume guards. */
#include "testutil.h"

#include "model/lora.h"
#include "task/task.h"
#include "train/trainer.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <time.h>

static const char *const FILL[] = {"the", "cat", "a", "big", "dog", "ran", "to", "park", "and", "saw",
                                   "little", "girl", "tree", "was", "happy", "day", "played", "with", "ball", "red"};

static char *model_path(void)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/models/stories260K/stories260K.gguf", tw_test_shared());
    cr_assert(access(p, R_OK) == 0, "%s missing: the shared models folder is needed", p);
    return p;
}

static void write_rows(const char *path, int n, uint64_t seed)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        char text[256] = "";
        const int kw_pos = (int)((s = s * 6364136223846793005ULL + 1442695040888963407ULL) >> 33) % 5;
        const char *kw = i % 2 ? "rain" : "sun";
        for (int w = 0; w < 5; w++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            const char *word = w == kw_pos ? kw : FILL[(s >> 33) % 20];
            strcat(text, w ? " " : "");
            strcat(text, word);
        }
        fprintf(f, "{\"id\": \"r%d\", \"input\": \"%s\", \"output\": \"%s\"}\n", i, text, kw);
    }
    fclose(f);
}

/* a task in a fresh temp dir; returns the dir (heap) */
static char *make_task(tw_task *t, int n_train, int n_dev)
{
    char *dir = tw_test_tmpdir();
    char p[512];
    snprintf(p, sizeof p, "%s/train.jsonl", dir);
    write_rows(p, n_train, 7);
    snprintf(p, sizeof p, "%s/dev.jsonl", dir);
    write_rows(p, n_dev, 99);
    snprintf(p, sizeof p, "%s/test.jsonl", dir);
    write_rows(p, 8, 5);
    free(tw_test_write(dir, "task.yaml",
                       "name: weather\ntype: classify\n"
                       "data: {train: train.jsonl, dev: dev.jsonl, test: test.jsonl}\n"
                       "labels: [rain, sun]\n"
                       "instructions: Say the weather word.\n"));
    snprintf(p, sizeof p, "%s/task.yaml", dir);
    tw_error err = {0};
    cr_assert_eq(tw_task_load(t, p, &err), TW_OK, "%s", err.msg);
    return dir;
}

static void rm_rf(char *dir)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}

static tw_train_params params(void)
{
    tw_train_params p = tw_train_default_params();
    p.model = model_path();
    p.lm.targets = TW_LORA_ALL;
    p.lm.rank = 4;
    p.lm.alpha = 8;
    p.lm.n_threads = 1;
    p.epochs = 3;
    p.batch = 2;
    p.grad_accum = 2;
    p.lr = 1e-2f;
    p.warmup = 0.1f;
    p.eval_every = 0;   /* epoch ends */
    p.save_every = 3;
    p.max_len = 128;
    return p;
}

/* the resume test: 8 examples, 1 x 2 per step, 2 epochs = 8 steps, dropout on (its
 * masks must be reproduced too), evaluation every 3 steps (and at 4, 8), checkpoints
 * every 2 */
static tw_train_params small_params(void)
{
    tw_train_params p = params();
    p.epochs = 2;
    p.batch = 1;
    p.grad_accum = 2;
    p.lm.dropout = 0.1f;
    p.lm.targets = TW_LORA_Q | TW_LORA_V | TW_LORA_DOWN;
    p.eval_every = 3;
    p.save_every = 2;
    return p;
}

static char *slurp(const char *dir, const char *name, size_t *len)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    cr_assert(f, "%s missing", p);
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

static void assert_same_file(const char *d1, const char *d2, const char *name)
{
    size_t n1, n2;
    char *a = slurp(d1, name, &n1), *b = slurp(d2, name, &n2);
    cr_assert(n1 == n2 && memcmp(a, b, n1) == 0, "%s differs between %s and %s (%zu vs %zu bytes)", name, d1, d2, n1,
              n2);
    free(a);
    free(b);
}

static size_t count_lines(const char *dir, const char *name)
{
    size_t n, k = 0;
    char *s = slurp(dir, name, &n);
    for (size_t i = 0; i < n; i++) k += s[i] == '\n';
    free(s);
    return k;
}

Test(trainer, learns_keyword_task)
{
    tw_task t;
    char *dir = make_task(&t, 24, 8);
    char out[600];
    snprintf(out, sizeof out, "%s/run", dir);
    tw_train_params p = params();
    tw_train_result r;
    tw_error err = {0};
    const double t0 = (double)clock() / CLOCKS_PER_SEC;
    cr_assert_eq(tw_train(&t, &p, out, &r, &err), TW_OK, "%s", err.msg);
    cr_log_info("steps %lld, loss %.4f -> %.4f, dev accuracy untuned %.3f -> best %.3f at step %lld, dev loss %.4f -> "
                "%.4f, %.0f tokens/s, %.2f s CPU",
                (long long)r.steps, r.first_loss, r.last_loss, r.untuned_metric, r.best_metric, (long long)r.best_step,
                r.untuned_dev_loss, r.best_dev_loss, r.tokens_per_s, (double)clock() / CLOCKS_PER_SEC - t0);
    cr_assert_eq(r.steps, 18);   /* 24 examples / (2 x 2) = 6 steps per epoch, 3 epochs */
    cr_assert_eq(r.n_train, 24);
    cr_assert_eq(r.n_dev_used, 8);
    cr_assert(r.last_loss < 0.5 * r.first_loss, "loss did not fall clearly: %.4f -> %.4f", r.first_loss, r.last_loss);
    cr_assert(r.best_metric > r.untuned_metric + 0.2, "dev accuracy %.3f vs untuned %.3f", r.best_metric,
              r.untuned_metric);
    cr_assert(r.best_dev_loss < r.untuned_dev_loss);
    /* outputs: the GGUF adapter reads back and is the best step's; train.json; the log */
    char p2[700];
    snprintf(p2, sizeof p2, "%s/adapter.gguf", out);
    tw_lora *l = NULL;
    cr_assert_eq(tw_lora_read_gguf(&l, p2, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(l->n, 5 * 7);
    cr_assert_eq(l->w[0].rank, 4);
    cr_assert_float_eq(l->alpha, 8.0f, 1e-6);
    double bnorm = 0;
    for (int i = 0; i < l->n; i++)
        for (int64_t j = 0; j < l->w[i].n_out * l->w[i].rank; j++) bnorm += fabs(l->w[i].b[j]);
    cr_assert(bnorm > 0, "the adapter written is the untrained one");
    tw_lora_free(l);
    snprintf(p2, sizeof p2, "%s/adapter", out);
    cr_assert_eq(tw_lora_read_peft(&l, p2, NULL, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(l->n, 35);
    tw_lora_free(l);
    snprintf(p2, sizeof p2, "%s/train.json", out);
    json_error_t je;
    json_t *j = json_load_file(p2, 0, &je);
    cr_assert(j, "%s: %s", p2, je.text);
    cr_assert_eq(json_integer_value(json_object_get(j, "best_step")), r.best_step);
    cr_assert_str_eq(json_string_value(json_object_get(j, "layout")), "plain");
    cr_assert_eq(strlen(json_string_value(json_object_get(j, "adapter_sha256"))), 64);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "config"), "rank")), 4);
    json_decref(j);
    cr_assert_eq(count_lines(out, "train_log.jsonl"), 19);   /* step 0 evaluation + 18 steps */
    /* a second run into the same directory without resume is refused */
    cr_assert_eq(tw_train(&t, &p, out, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "--resume"), "%s", err.msg);
    /* resume with other hyper-parameters is refused */
    p.resume = true;
    p.lr = 2e-2f;
    cr_assert_eq(tw_train(&t, &p, out, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "another configuration"), "%s", err.msg);
    tw_task_free(&t);
    rm_rf(dir);
}

static int64_t g_kill_at;
static void kill_hook(void *ud, const tw_train_event *ev)
{
    (void)ud;
    if (ev->step == g_kill_at) raise(SIGKILL);
}

/* run tw_train in a child that SIGKILLs itself after step kill_at */
static void killed_child(const tw_task *t, const char *out, int64_t kill_at, bool resume)
{
    fflush(NULL);
    const pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        tw_train_params p = small_params();
        p.resume = resume;
        g_kill_at = kill_at;
        p.on_event = kill_hook;
        tw_error err = {0};
        tw_train(t, &p, out, NULL, &err);
        _exit(0);   /* not reached when killed */
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child was not killed (status %d)", status);
}

Test(trainer, resume_after_kill_is_exact)
{
    tw_task t;
    char *dir = make_task(&t, 8, 2);
    char ra[600], rb[600];
    snprintf(ra, sizeof ra, "%s/killed", dir);
    snprintf(rb, sizeof rb, "%s/straight", dir);
    /* killed after step 3 (an evaluation step; last checkpoint: 2), resumed, killed after
     * step 6 (a checkpoint and evaluation step), resumed to the end. Children first: no OpenMP threads exist
     * in this process before the forks. */
    killed_child(&t, ra, 3, false);
    killed_child(&t, ra, 6, true);
    tw_train_params p = small_params();
    p.resume = true;
    tw_train_result r;
    tw_error err = {0};
    cr_assert_eq(tw_train(&t, &p, ra, &r, &err), TW_OK, "%s", err.msg);
    cr_assert(r.resumed);
    cr_assert_eq(r.steps, 8);
    p.resume = false;
    tw_train_result r2;
    cr_assert_eq(tw_train(&t, &p, rb, &r2, &err), TW_OK, "%s", err.msg);
    cr_assert(!r2.resumed);
    cr_assert_eq(r.best_step, r2.best_step);
    assert_same_file(ra, rb, "adapter.gguf");
    assert_same_file(ra, rb, "adapter/adapter_model.safetensors");
    assert_same_file(ra, rb, "adapter/adapter_config.json");
    cr_assert_eq(count_lines(ra, "train_log.jsonl"), count_lines(rb, "train_log.jsonl"));
    /* resuming a finished run rewrites the same outputs */
    p.resume = true;
    cr_assert_eq(tw_train(&t, &p, rb, NULL, &err), TW_OK, "%s", err.msg);
    assert_same_file(ra, rb, "adapter.gguf");
    tw_task_free(&t);
    rm_rf(dir);
}

/* --chat-template chatml on a model without a template: the chat layout (ChatML markers
 * tokenized as text by stories260K's vocabulary), a short run through max_steps */
Test(trainer, chat_layout_and_max_steps)
{
    tw_task t;
    char *dir = make_task(&t, 8, 2);
    char out[600];
    snprintf(out, sizeof out, "%s/run", dir);
    tw_train_params p = params();
    p.chat_template = "chatml";
    p.batch = 1;
    p.grad_accum = 1;
    p.max_steps = 3;
    p.save_every = 100;
    p.max_len = 400;   /* the ChatML markers cost ~10 tokens each here */
    tw_train_result r;
    tw_error err = {0};
    cr_assert_eq(tw_train(&t, &p, out, &r, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(r.steps, 3);
    cr_assert(isfinite(r.first_loss) && r.first_loss > 0);
    char p2[700];
    snprintf(p2, sizeof p2, "%s/train.json", out);
    json_error_t je;
    json_t *j = json_load_file(p2, 0, &je);
    cr_assert(j, "%s: %s", p2, je.text);
    cr_assert_str_eq(json_string_value(json_object_get(j, "layout")), "chat");
    cr_assert_str_eq(json_string_value(json_object_get(j, "template_family")), "chatml");
    cr_assert_eq(json_integer_value(json_object_get(j, "steps")), 3);
    json_decref(j);
    /* max_len too small for any example: a clear error */
    char out2[600];
    snprintf(out2, sizeof out2, "%s/run2", dir);
    p.max_len = 4;
    cr_assert_eq(tw_train(&t, &p, out2, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "max-len"), "%s", err.msg);
    tw_task_free(&t);
    rm_rf(dir);
}

/* early stopping: with lr 1e-9 the dev accuracy cannot improve on the untuned model's, so
 * patience 2 with an evaluation every step stops after step 2, and the adapter written is
 * the step-0 one (B = 0: PEFT's init) */
Test(trainer, early_stopping_keeps_best)
{
    tw_task t;
    char *dir = make_task(&t, 8, 2);
    char out[600];
    snprintf(out, sizeof out, "%s/run", dir);
    tw_train_params p = params();
    p.lr = 1e-9f;
    p.batch = 1;
    p.grad_accum = 1;
    p.eval_every = 1;
    p.patience = 2;
    tw_train_result r;
    tw_error err = {0};
    cr_assert_eq(tw_train(&t, &p, out, &r, &err), TW_OK, "%s", err.msg);
    cr_assert(r.early_stopped);
    cr_assert_eq(r.steps, 2);
    cr_assert_eq(r.best_step, 0);
    char p2[700];
    snprintf(p2, sizeof p2, "%s/adapter.gguf", out);
    tw_lora *l = NULL;
    cr_assert_eq(tw_lora_read_gguf(&l, p2, &err), TW_OK, "%s", err.msg);
    for (int i = 0; i < l->n; i++)
        for (int64_t j = 0; j < l->w[i].n_out * l->w[i].rank; j++)
            cr_assert_eq(l->w[i].b[j], 0.0f, "the adapter written is not the best (step 0) one");
    tw_lora_free(l);
    snprintf(p2, sizeof p2, "%s/train.json", out);
    json_error_t je;
    json_t *j = json_load_file(p2, 0, &je);
    cr_assert(j, "%s: %s", p2, je.text);
    cr_assert_str_eq(json_string_value(json_object_get(j, "stopped")), "early_stopping");
    json_decref(j);
    tw_task_free(&t);
    rm_rf(dir);
}

/* Training subsets (--train-max): sizes, label shares, seeding, nesting. */
Test(trainer, train_subset_is_stratified_and_seeded)
{
    tw_dataset ds = {0};
    tw_error err;
    char id[32], in[32];
    for (int i = 0; i < 100; i++) {   /* labels a:60 b:30 c:10, interleaved */
        snprintf(id, sizeof id, "r%d", i);
        snprintf(in, sizeof in, "text %d", i);
        tw_example e = {.id = id, .input = in, .output = (char *)(i % 10 < 6 ? "a" : i % 10 < 9 ? "b" : "c")};
        cr_assert_eq(tw_dataset_push(&ds, &e, &err), TW_OK);
    }
    size_t sizes[] = {3, 10, 25, 50};
    char *prev[100] = {0};
    size_t n_prev = 0;
    for (size_t s = 0; s < 4; s++) {
        tw_dataset d = {0};
        for (size_t i = 0; i < ds.n; i++) cr_assert_eq(tw_dataset_push(&d, &ds.rows[i], &err), TW_OK);
        cr_assert_eq(tw_train_subset(&d, sizes[s], true, 7, &err), TW_OK, "%s", err.msg);
        cr_expect_eq(d.n, sizes[s]);
        size_t na = 0, nb = 0, nc = 0;
        int last = -1;
        for (size_t i = 0; i < d.n; i++) {
            na += d.rows[i].output[0] == 'a', nb += d.rows[i].output[0] == 'b', nc += d.rows[i].output[0] == 'c';
            int k = atoi(d.rows[i].id + 1);
            cr_expect_gt(k, last, "file order kept");
            last = k;
        }
        /* floor shares, at least one per label, remainders to the largest fractions */
        size_t want[4][3] = {{1, 1, 1}, {6, 3, 1}, {15, 8, 2}, {30, 15, 5}};
        cr_expect(na == want[s][0] && nb == want[s][1] && nc == want[s][2], "size %zu: a %zu b %zu c %zu", sizes[s], na, nb, nc);
        /* a larger subset with the same seed keeps the rows of the smaller one */
        size_t kept = 0;
        for (size_t j = 0; j < n_prev; j++)
            for (size_t i = 0; i < d.n; i++) kept += strcmp(prev[j], d.rows[i].id) == 0;
        if (s >= 1) cr_expect_eq(kept, n_prev, "size %zu keeps the %zu rows of the previous size", sizes[s], n_prev);
        for (size_t j = 0; j < n_prev; j++) free(prev[j]);
        for (size_t i = 0; i < d.n; i++) prev[i] = strdup(d.rows[i].id);
        n_prev = d.n;
        tw_dataset_free(&d);
    }
    for (size_t j = 0; j < n_prev; j++) free(prev[j]);
    /* another seed draws other rows; keep >= n changes nothing */
    tw_dataset d1 = {0}, d2 = {0};
    for (size_t i = 0; i < ds.n; i++) tw_dataset_push(&d1, &ds.rows[i], &err), tw_dataset_push(&d2, &ds.rows[i], &err);
    cr_assert_eq(tw_train_subset(&d1, 10, true, 7, &err), TW_OK);
    cr_assert_eq(tw_train_subset(&d2, 10, true, 8, &err), TW_OK);
    int same = 0;
    for (size_t i = 0; i < 10; i++) same += strcmp(d1.rows[i].id, d2.rows[i].id) == 0;
    cr_expect_lt(same, 10, "seeds 7 and 8 drew the same rows");
    cr_assert_eq(tw_train_subset(&ds, 100, true, 7, &err), TW_OK);
    cr_expect_eq(ds.n, 100);
    tw_dataset_free(&d1);
    tw_dataset_free(&d2);
    tw_dataset_free(&ds);
}
