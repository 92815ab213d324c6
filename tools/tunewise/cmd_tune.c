/* cmd_tune.c — `tunewise tune --task task.yaml --model MODEL [options] -o run/`: LoRA /
 * QLoRA fine-tuning on the task's train split with dev evaluation, checkpoints and resume
 * (src/train/trainer.h). Prints progress lines on stderr; the run directory gets
 * adapter.gguf, adapter/ (PEFT), train_log.jsonl, train.json, checkpoint.bin. */
#include "cli.h"

#include "model/lora.h"
#include "train/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cli_opt OPTS[] = {
    {"task", 0, CLI_STR, "FILE", "task file (task.yaml)", NULL},
    {"model", 'm', CLI_STR, "MODEL", "base model: GGUF file (any type: QLoRA when quantized) or HF folder", NULL},
    {"out", 'o', CLI_STR, "DIR", "run directory to write", NULL},
    {"rank", 'r', CLI_INT, "N", "LoRA rank", "8"},
    {"alpha", 0, CLI_NUM, "X", "LoRA alpha (scale = alpha / rank)", "16"},
    {"targets", 0, CLI_STR, "LIST", "adapted projections: q,k,v,o,gate,up,down or all", "q,v"},
    {"dropout", 0, CLI_NUM, "P", "LoRA dropout", "0"},
    {"epochs", 0, CLI_INT, "N", "passes over the training split", "3"},
    {"max-steps", 0, CLI_INT, "N", "stop after N optimizer steps (0: epochs decide)", "0"},
    {"lr", 0, CLI_NUM, "X", "peak learning rate", "2e-4"},
    {"lr-min", 0, CLI_NUM, "X", "learning rate at the end of the decay", "0"},
    {"schedule", 0, CLI_STR, "NAME", "decay after warmup: cosine|linear|constant", "cosine"},
    {"warmup", 0, CLI_NUM, "FRAC", "warmup steps as a fraction of all steps", "0.05"},
    {"weight-decay", 0, CLI_NUM, "X", "AdamW decoupled weight decay", "0.01"},
    {"clip", 0, CLI_NUM, "X", "clip the global gradient norm (0: off)", "1"},
    {"batch", 'b', CLI_INT, "N", "examples per micro-batch", "8"},
    {"grad-accum", 0, CLI_INT, "N", "micro-batches per optimizer step", "1"},
    {"max-len", 0, CLI_INT, "N", "tokens per example (longer ones are truncated, counted)", "256"},
    {"seed", 0, CLI_INT, "N", "seed (LoRA init, data order, dropout)", "1"},
    {"eval-every", 0, CLI_INT, "N", "dev evaluation every N steps (0: epoch ends only)", "0"},
    {"save-every", 0, CLI_INT, "N", "checkpoint every N steps", "10"},
    {"dev-max", 0, CLI_INT, "N", "dev examples evaluated (seeded subset; 0: all)", "200"},
    {"prompt", 0, CLI_STR, "full|short", "system prompt of the training examples: full (the zero-shot prompt: instructions + label list / schema) or short (instructions only; 'prompt --adapter' follows it)", "full"},
    {"train-max", 0, CLI_INT, "N", "train on a seeded subset of N rows, stratified by label (0: all; learning curves)", "0"},
    {"patience", 0, CLI_INT, "N", "early stopping: evaluations without improvement (0: off)", "0"},
    {"chat-template", 0, CLI_STR, "FILE|NAME", "chat template file or built-in name (default: the model's)", NULL},
    {"threads", 't', CLI_INT, "N", "threads (0: all cores)", "0"},
    {"resume", 0, CLI_FLAG, NULL, "continue the run in DIR from its last checkpoint", NULL},
    {0},
};

static void fmt_time(char *b, size_t n, double s)
{
    if (!isfinite(s) || s < 0) { snprintf(b, n, "?"); return; }
    const long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(b, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(b, n, "%ld:%02ld", t / 60, t % 60);
}

static void on_event(void *ud, const tw_train_event *ev)
{
    if (*(const bool *)ud) return;   /* quiet */
    if (ev->step == 0) {
        fprintf(stderr, "tune: untuned: dev loss %.4f", ev->dev_loss);
        if (ev->metric) fprintf(stderr, ", dev %s %.4f", ev->metric, ev->dev_metric);
        fprintf(stderr, "\n");
        return;
    }
    char eta[32];
    fmt_time(eta, sizeof eta, ev->eta_s);
    fprintf(stderr, "tune: step %lld/%lld  epoch %.2f  loss %.4f  lr %.2e  %.0f tok/s  ETA %s", (long long)ev->step,
            (long long)ev->total_steps, ev->epoch, ev->loss, ev->lr, ev->tokens_per_s, eta);
    if (ev->evaluated) {
        fprintf(stderr, "  | dev loss %.4f", ev->dev_loss);
        if (ev->metric) fprintf(stderr, "  dev %s %.4f", ev->metric, ev->dev_metric);
        if (ev->is_best) fprintf(stderr, "  (best)");
    }
    if (ev->checkpointed) fprintf(stderr, "  [saved]");
    fprintf(stderr, "\n");
}

static int run(cli_args *a)
{
    if (!cli_given(a, "task")) return cli_usage_error(a->cmd, "--task FILE is required");
    if (!cli_given(a, "model")) return cli_usage_error(a->cmd, "--model MODEL is required");
    if (!cli_given(a, "out")) return cli_usage_error(a->cmd, "-o DIR is required");
    tw_train_params p = tw_train_default_params();
    p.model = cli_str(a, "model");
    p.chat_template = cli_given(a, "chat-template") ? cli_str(a, "chat-template") : NULL;
    if (!tw_lora_targets_parse(cli_str(a, "targets"), &p.lm.targets) || !p.lm.targets)
        return cli_usage_error(a->cmd, "--targets '%s': expected a comma-separated list of q,k,v,o,gate,up,down or all",
                               cli_str(a, "targets"));
    p.lm.rank = (int32_t)cli_int(a, "rank");
    p.lm.alpha = (float)cli_num(a, "alpha");
    p.lm.dropout = (float)cli_num(a, "dropout");
    p.lm.n_threads = (int)cli_int(a, "threads");
    p.epochs = (int32_t)cli_int(a, "epochs");
    p.max_steps = cli_int(a, "max-steps");
    p.lr = (float)cli_num(a, "lr");
    p.lr_min = (float)cli_num(a, "lr-min");
    const char *sch = cli_str(a, "schedule");
    if (!strcmp(sch, "cosine")) p.schedule = TW_LR_COSINE;
    else if (!strcmp(sch, "linear")) p.schedule = TW_LR_LINEAR;
    else if (!strcmp(sch, "constant")) p.schedule = TW_LR_CONSTANT;
    else return cli_usage_error(a->cmd, "--schedule '%s': expected cosine, linear or constant", sch);
    p.warmup = (float)cli_num(a, "warmup");
    p.adamw.weight_decay = (float)cli_num(a, "weight-decay");
    p.clip = (float)cli_num(a, "clip");
    p.batch = (int32_t)cli_int(a, "batch");
    p.grad_accum = (int32_t)cli_int(a, "grad-accum");
    p.max_len = (int32_t)cli_int(a, "max-len");
    p.seed = (uint64_t)cli_int(a, "seed");
    p.eval_every = cli_int(a, "eval-every");
    p.save_every = cli_int(a, "save-every");
    p.dev_max = (size_t)(cli_int(a, "dev-max") > 0 ? cli_int(a, "dev-max") : 0);
    p.train_max = (size_t)(cli_int(a, "train-max") > 0 ? cli_int(a, "train-max") : 0);
    if (strcmp(cli_str(a, "prompt"), "full") && strcmp(cli_str(a, "prompt"), "short"))
        return cli_usage_error(a->cmd, "unknown --prompt '%s' (expected full or short)", cli_str(a, "prompt"));
    p.prompt_short = strcmp(cli_str(a, "prompt"), "short") == 0;
    p.patience = (int32_t)cli_int(a, "patience");
    p.resume = cli_flag(a, "resume");
    if (p.lm.rank <= 0 || p.epochs <= 0 || p.batch <= 0 || p.grad_accum <= 0 || p.max_len < 2 || p.save_every <= 0 ||
        !(p.lr > 0) || !(p.lm.dropout >= 0 && p.lm.dropout < 1) || !(p.warmup >= 0 && p.warmup <= 1))
        return cli_usage_error(a->cmd, "an option is out of range (rank, epochs, batch, grad-accum, save-every > 0; "
                                       "max-len >= 2; lr > 0; 0 <= dropout < 1; 0 <= warmup <= 1)");
    bool quiet = a->quiet;
    p.on_event = on_event;
    p.ud = &quiet;
    tw_error err;
    tw_error_clear(&err);
    tw_task task;
    memset(&task, 0, sizeof task);
    if (tw_task_load(&task, cli_str(a, "task"), &err)) return cli_fail(&err);
    tw_train_result r;
    const tw_status st = tw_train(&task, &p, cli_str(a, "out"), &r, &err);
    tw_task_free(&task);
    if (st) return cli_fail(&err);
    if (!quiet) {
        fprintf(stderr, "tune: %lld steps%s%s; %zu train examples (%zu truncated to --max-len, %zu dropped), %zu dev\n",
                (long long)r.steps, r.resumed ? " (resumed)" : "", r.early_stopped ? ", stopped early" : "", r.n_train,
                r.truncated, r.dropped, r.n_dev_used);
        fprintf(stderr, "tune: best step %lld: dev loss %.4f (untuned %.4f)", (long long)r.best_step, r.best_dev_loss,
                r.untuned_dev_loss);
        if (isfinite(r.best_metric)) fprintf(stderr, ", dev metric %.4f (untuned %.4f)", r.best_metric, r.untuned_metric);
        fprintf(stderr, "\ntune: wrote %s/adapter.gguf, %s/adapter/, train_log.jsonl, train.json\n", cli_str(a, "out"),
                cli_str(a, "out"));
    }
    return EXIT_OK;
}

const cli_cmd cmd_tune = {
    .name = "tune",
    .summary = "fine-tune a model with LoRA / QLoRA on a task",
    .usage = "--task FILE --model MODEL -o DIR [options]",
    .details = "Trains a LoRA adapter on the task's train split (the base weights stay frozen in their file type:\n"
               "QLoRA for quantized GGUF models), on exactly the zero-shot prompt the prompt arm sends, with the loss\n"
               "on the answer tokens only. Evaluates on the dev split (loss; classify: accuracy by label scoring),\n"
               "keeps the best step's adapter, checkpoints every --save-every steps; --resume continues a killed\n"
               "run and ends with the same adapter as an uninterrupted one. Writes DIR/adapter.gguf (llama.cpp),\n"
               "DIR/adapter/ (PEFT), DIR/train_log.jsonl and DIR/train.json. See docs/training.md.",
    .opts = OPTS,
    .min_pos = 0,
    .max_pos = 0,
    .run = run,
};
