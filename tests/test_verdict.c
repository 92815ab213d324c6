/* test_verdict.c — every rule of the verdict (docs/decision.md) firing and not firing
 * on constructed evidence, the selection it leads to, confidence levels, "what would
 * change" lines (break-even, learning curve, data), the learning-curve fit on points
 * with a known answer, and the JSON form. */
#include "testutil.h"

#include "decide/verdict.h"

#include <math.h>

#define NITEMS 400

static tw_evidence ev;

static void setup(void)
{
    tw_error e = {0};
    cr_assert_eq(tw_evidence_init(&ev, &e), TW_OK);
    tw_evidence_set_str(&ev.metric, "accuracy", &e);
    ev.have_audit = true;
    ev.eval_rows = NITEMS;
    ev.train_rows = 2000;
    ev.eval_level = TW_AUDIT_READY;
    ev.finetune_level = TW_AUDIT_READY;
    ev.good_eval = 300;
}
static void teardown(void) { tw_evidence_free(&ev); }

/* An arm whose first `k` of NITEMS shared items are right (nested sets, so paired tests
 * between two such arms have b = 0 and c = |k1 - k2|). CI = +-0.04. */
static tw_ev_arm *arm(const char *name, tw_arm_kind kind, size_t k)
{
    tw_ev_arm *a;
    tw_error e = {0};
    cr_assert_eq(tw_evidence_add_arm(&ev, name, &a, &e), TW_OK, "%s", e.msg);
    a->kind = kind;
    a->metric = (double)k / NITEMS;
    a->lo = a->metric - 0.04;
    a->hi = a->metric + 0.04;
    a->n = NITEMS;
    a->ids = calloc(NITEMS, sizeof *a->ids);
    a->correct = calloc(NITEMS, 1);
    for (size_t i = 0; i < NITEMS; i++) {
        char id[16];
        snprintf(id, sizeof id, "r%zu", i);
        a->ids[i] = strdup(id);
        a->correct[i] = i < k;
    }
    a->n_items = NITEMS;
    a->invalid_rate = 0;
    return a;
}

static void api(tw_ev_arm *a, double tin, double tout, double pin, double pout)
{
    a->cost_known = true;
    a->cost.kind = TW_BILL_API;
    a->cost.tokens_in = tin;
    a->cost.tokens_out = tout;
    a->cost.input_per_mtok = pin;
    a->cost.output_per_mtok = pout;
}

static void hourly(tw_ev_arm *a, double spc, double per_hour, double setup_hours_labels)
{
    a->cost_known = true;
    a->cost.kind = TW_BILL_HOURLY;
    a->cost.seconds_per_call = spc;
    a->cost.per_hour = per_hour;
    a->cost.label_hours = setup_hours_labels;
    a->cost.label_rate = 1;
}

static tw_verdict decide(void)
{
    tw_verdict v;
    tw_error e = {0};
    cr_assert_eq(tw_verdict_decide(&v, &ev, &e), TW_OK, "%s", e.msg);
    return v;
}

static const char *rec_name(const tw_verdict *v) { return v->recommended >= 0 ? ev.arms[v->recommended].name : "(none)"; }

static bool has_change(const tw_verdict *v, const char *needle)
{
    for (size_t i = 0; i < v->n_changes; i++)
        if (strstr(v->changes[i], needle)) return true;
    return false;
}

TestSuite(verdict, .init = setup, .fini = teardown);

Test(verdict, no_arms_is_an_error)
{
    tw_verdict v;
    tw_error e = {0};
    cr_assert_eq(tw_verdict_decide(&v, &ev, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "no arms"));
}

Test(verdict, r1_eval_not_ready_stops)
{
    arm("p", TW_ARM_PROMPT, 300);
    ev.eval_rows = 80;
    ev.eval_level = TW_AUDIT_NOT_READY;
    tw_verdict v = decide();
    cr_assert(v.rules[TW_RULE_EVAL_READY].fired);
    cr_assert_str_eq(v.decision, "none");
    cr_assert_eq(v.recommended, -1);
    cr_assert_eq(v.confidence, TW_CONF_LOW);
    cr_assert(strstr(v.rules[TW_RULE_EVAL_READY].text, "80 rows"), "%s", v.rules[TW_RULE_EVAL_READY].text);
    cr_assert(has_change(&v, "~120 more labeled evaluation rows"));
    cr_assert(strstr(v.rules[TW_RULE_COST_VOLUME].text, "not evaluated"));
    tw_verdict_free(&v);
}

Test(verdict, r1_ready_and_r2_prompt_baseline)
{
    tw_ev_arm *p = arm("p", TW_ARM_PROMPT, 300);
    tw_evidence_set_str(&p->strategy, "kshot", NULL);
    ev.mde = 0.061;
    tw_verdict v = decide();
    cr_assert_not(v.rules[TW_RULE_EVAL_READY].fired);
    cr_assert(strstr(v.rules[TW_RULE_EVAL_READY].text, "6.1 points"), "%s", v.rules[TW_RULE_EVAL_READY].text);
    cr_assert(v.rules[TW_RULE_START_PROMPT].fired);
    cr_assert(strstr(v.rules[TW_RULE_START_PROMPT].text, "'p' (kshot) scores accuracy 0.750 [0.710, 0.790]"),
              "%s", v.rules[TW_RULE_START_PROMPT].text);
    cr_assert_str_eq(v.decision, "prompt");
    tw_verdict_free(&v);
}

Test(verdict, r2_no_prompt_arm)
{
    arm("c", TW_ARM_CLASSIC, 300);
    tw_verdict v = decide();
    cr_assert_not(v.rules[TW_RULE_START_PROMPT].fired);
    cr_assert(strstr(v.rules[TW_RULE_START_PROMPT].text, "no prompt arm"));
    cr_assert_str_eq(v.decision, "classic");
    tw_verdict_free(&v);
}

Test(verdict, r3_latency_limit_sets_arms_aside)
{
    tw_ev_arm *p = arm("p", TW_ARM_PROMPT, 340);
    p->latency_p90_ms = 900;
    tw_ev_arm *l = arm("l", TW_ARM_LORA, 330);
    l->latency_p90_ms = 120;
    ev.max_latency_ms = 300;
    tw_verdict v = decide();
    cr_assert(v.rules[TW_RULE_LATENCY].fired);
    cr_assert(strstr(v.rules[TW_RULE_LATENCY].text, "'p' (p90 900 ms)"), "%s", v.rules[TW_RULE_LATENCY].text);
    cr_assert_str_eq(rec_name(&v), "l");
    tw_verdict_free(&v);
    ev.max_latency_ms = 1000;
    v = decide();
    cr_assert_not(v.rules[TW_RULE_LATENCY].fired);
    cr_assert_str_eq(rec_name(&v), "p");   /* tied (p = 0.25 paired), prompting first */
    tw_verdict_free(&v);
}

Test(verdict, r4_too_little_data_sets_finetunes_aside)
{
    arm("p", TW_ARM_PROMPT, 280);
    arm("l", TW_ARM_LORA, 340);   /* much better, but trained on too little data */
    ev.train_rows = 60;
    tw_verdict v = decide();
    cr_assert(v.rules[TW_RULE_DATA_FINETUNE].fired);
    cr_assert(strstr(v.rules[TW_RULE_DATA_FINETUNE].text, "only 60 labeled training rows"));
    cr_assert_str_eq(rec_name(&v), "p");
    cr_assert(has_change(&v, "~40 more labeled training rows"));
    tw_verdict_free(&v);
    ev.train_rows = 2000;
    v = decide();
    cr_assert_not(v.rules[TW_RULE_DATA_FINETUNE].fired);
    cr_assert_str_eq(rec_name(&v), "l");
    cr_assert_str_eq(v.decision, "finetune");
    tw_verdict_free(&v);
}

Test(verdict, r5_target_met_by_prompting_keeps_prompting)
{
    arm("p", TW_ARM_PROMPT, 360);   /* 0.90 */
    arm("l", TW_ARM_LORA, 390);     /* better, but prompting already meets the target */
    ev.target = 0.85;
    tw_verdict v = decide();
    cr_assert(v.rules[TW_RULE_TARGET].fired);
    cr_assert(strstr(v.rules[TW_RULE_TARGET].text, "'p' 0.900"), "%s", v.rules[TW_RULE_TARGET].text);
    cr_assert_str_eq(rec_name(&v), "p");
    cr_assert_str_eq(ev.arms[v.runner_up].name, "l");
    cr_assert(v.rules[TW_RULE_GAP_REAL].fired);   /* real, but not needed */
    cr_assert(strstr(v.rules[TW_RULE_GAP_REAL].text, "prompting already meets the target"), "%s",
              v.rules[TW_RULE_GAP_REAL].text);
    /* both meet the target and nothing says which is cheaper */
    cr_assert_eq(v.confidence, TW_CONF_MEDIUM, "%s", v.confidence_reason);
    cr_assert(strstr(v.confidence_reason, "equal standing"));
    tw_verdict_free(&v);
    ev.arms[1].metric = 0.84;   /* only prompting meets it now: clear-cut */
    v = decide();
    cr_assert_str_eq(rec_name(&v), "p");
    cr_assert_eq(v.confidence, TW_CONF_HIGH, "%s", v.confidence_reason);
    tw_verdict_free(&v);
}

Test(verdict, r5_target_missed_gives_low_confidence)
{
    arm("p", TW_ARM_PROMPT, 300);
    ev.target = 0.95;
    tw_verdict v = decide();
    cr_assert_not(v.rules[TW_RULE_TARGET].fired);
    cr_assert(strstr(v.rules[TW_RULE_TARGET].text, "20.0 points short"), "%s", v.rules[TW_RULE_TARGET].text);
    cr_assert_eq(v.confidence, TW_CONF_LOW);
    cr_assert(strstr(v.confidence_reason, "no arm reaches the target"));
    tw_verdict_free(&v);
}

Test(verdict, r6_real_gap_picks_the_finetune)
{
    arm("p", TW_ARM_PROMPT, 300);
    arm("l", TW_ARM_LORA, 340);   /* 40 discordant pairs all one way: p ~ 2e-12 */
    tw_verdict v = decide();
    cr_assert(v.rules[TW_RULE_GAP_REAL].fired);
    cr_assert(strstr(v.rules[TW_RULE_GAP_REAL].text, "+10.0 points"), "%s", v.rules[TW_RULE_GAP_REAL].text);
    cr_assert(strstr(v.rules[TW_RULE_GAP_REAL].text, "400 paired items"));
    cr_assert_str_eq(rec_name(&v), "l");
    cr_assert_str_eq(ev.arms[v.runner_up].name, "p");
    tw_verdict_free(&v);
}

Test(verdict, r6_noise_gap_keeps_prompting)
{
    arm("p", TW_ARM_PROMPT, 300);
    arm("l", TW_ARM_LORA, 305);   /* 5 discordant pairs: p = 0.0625 */
    tw_verdict v = decide();
    cr_assert_not(v.rules[TW_RULE_GAP_REAL].fired);
    cr_assert(strstr(v.rules[TW_RULE_GAP_REAL].text, "within noise"));
    cr_assert_str_eq(rec_name(&v), "p");
    /* tied contenders with unknown cost: medium confidence */
    cr_assert_eq(v.confidence, TW_CONF_MEDIUM, "%s", v.confidence_reason);
    tw_verdict_free(&v);
}

Test(verdict, r6_without_paired_items_uses_ci_overlap)
{
    tw_ev_arm *p = arm("p", TW_ARM_PROMPT, 300);
    tw_ev_arm *l = arm("l", TW_ARM_LORA, 340);
    p->n_items = l->n_items = 0;   /* arrays stay allocated; freed by count... keep them */
    for (size_t i = 0; i < NITEMS; i++) {
        free(p->ids[i]);
        free(l->ids[i]);
    }
    tw_verdict v = decide();
    cr_assert(v.rules[TW_RULE_GAP_REAL].fired);   /* [0.81,0.89] vs [0.71,0.79]: disjoint */
    cr_assert(strstr(v.rules[TW_RULE_GAP_REAL].text, "no paired items"));
    tw_verdict_free(&v);
}

Test(verdict, r7_classic_enough)
{
    arm("p", TW_ARM_PROMPT, 330);
    arm("c", TW_ARM_CLASSIC, 327);
    tw_verdict v = decide();
    cr_assert(v.rules[TW_RULE_CLASSIC_ENOUGH].fired);
    cr_assert_str_eq(v.decision, "classic");
    cr_assert(strstr(v.rules[TW_RULE_CLASSIC_ENOUGH].text, "within noise"));
    tw_verdict_free(&v);
}

Test(verdict, r7_classic_not_enough)
{
    arm("p", TW_ARM_PROMPT, 340);
    arm("c", TW_ARM_CLASSIC, 280);
    tw_verdict v = decide();
    cr_assert_not(v.rules[TW_RULE_CLASSIC_ENOUGH].fired);
    cr_assert(strstr(v.rules[TW_RULE_CLASSIC_ENOUGH].text, "significantly below"));
    cr_assert_str_eq(v.decision, "prompt");
    tw_verdict_free(&v);
}

Test(verdict, r8_knowledge_gap_suggests_retrieval)
{
    arm("zero", TW_ARM_PROMPT, 280);
    tw_ev_arm *k = arm("knn", TW_ARM_PROMPT, 330);
    k->retrieval = true;
    tw_verdict v = decide();
    cr_assert(v.rules[TW_RULE_KNOWLEDGE_FORMAT].fired);
    cr_assert(strstr(v.rules[TW_RULE_KNOWLEDGE_FORMAT].text, "the gap is knowledge"));
    cr_assert(has_change(&v, "add retrieval"));
    tw_verdict_free(&v);
}

Test(verdict, r8_format_problem_suggests_constraining)
{
    tw_ev_arm *p = arm("p", TW_ARM_PROMPT, 300);
    p->invalid_rate = 0.12;
    tw_verdict v = decide();
    cr_assert(v.rules[TW_RULE_KNOWLEDGE_FORMAT].fired);
    cr_assert(strstr(v.rules[TW_RULE_KNOWLEDGE_FORMAT].text, "12.0% of the best prompt arm's outputs are malformed"));
    cr_assert(has_change(&v, "constrained output"));
    tw_verdict_free(&v);
    p->constrained = true;   /* already constrained: behaviour, a fine-tune's job */
    v = decide();
    cr_assert(strstr(v.rules[TW_RULE_KNOWLEDGE_FORMAT].text, "even with constrained output"));
    cr_assert_not(has_change(&v, "constrained output"));
    tw_verdict_free(&v);
}

Test(verdict, r8_not_fired)
{
    tw_ev_arm *p = arm("p", TW_ARM_PROMPT, 300);
    p->invalid_rate = 0.01;
    tw_ev_arm *k = arm("knn", TW_ARM_PROMPT, 304);   /* retrieval gain within noise (p = 0.125) */
    k->retrieval = true;
    k->invalid_rate = 0.01;
    tw_verdict v = decide();
    cr_assert_not(v.rules[TW_RULE_KNOWLEDGE_FORMAT].fired, "%s", v.rules[TW_RULE_KNOWLEDGE_FORMAT].text);
    cr_assert(strstr(v.rules[TW_RULE_KNOWLEDGE_FORMAT].text, "+1.0 points (McNemar p = 0.125"), "%s",
              v.rules[TW_RULE_KNOWLEDGE_FORMAT].text);
    cr_assert(strstr(v.rules[TW_RULE_KNOWLEDGE_FORMAT].text, "1.0% of the best"));
    cr_assert_not(has_change(&v, "add retrieval"));
    tw_verdict_free(&v);
}

Test(verdict, r9_cost_at_volume_picks_the_cheaper_tied_arm)
{
    /* API prompt: 1000 in + 10 out tokens at $1/$1 per 1M = $1.01e-3 per call.
     * LoRA: self-hosted 0.36 s/call at $1/h = $1e-4 per call, $1200 labeling setup.
     * Year one: 12 V 1.01e-3 = 1200 + 12 V 1e-4 -> V = 1200 / (12 * 9.1e-4) = 109,890 */
    api(arm("p", TW_ARM_PROMPT, 330), 1000, 10, 1, 1);
    hourly(arm("l", TW_ARM_LORA, 332), 0.36, 1, 1200);
    ev.monthly_volume = 500000;
    tw_verdict v = decide();
    cr_assert(v.rules[TW_RULE_COST_VOLUME].fired, "%s", v.rules[TW_RULE_COST_VOLUME].text);
    cr_assert_str_eq(rec_name(&v), "l");
    cr_assert_float_eq(v.costs[0].year_one, 12 * 500000 * 1.01e-3, 1e-6);
    cr_assert_float_eq(v.costs[1].year_one, 1200 + 12 * 500000 * 1e-4, 1e-6);
    cr_assert(strstr(v.rules[TW_RULE_COST_VOLUME].text, "at 500k calls/month"), "%s", v.rules[TW_RULE_COST_VOLUME].text);
    cr_assert(has_change(&v, "above 110k calls/month 'l' is cheaper than 'p'"));
    cr_assert_eq(v.confidence, TW_CONF_HIGH, "%s", v.confidence_reason);
    tw_verdict_free(&v);
    /* at a low volume prompting is both preferred and cheapest */
    ev.monthly_volume = 10000;
    v = decide();
    cr_assert_not(v.rules[TW_RULE_COST_VOLUME].fired);
    cr_assert_str_eq(rec_name(&v), "p");
    cr_assert(has_change(&v, "above 110k calls/month 'l' is cheaper than 'p'"));
    tw_verdict_free(&v);
    /* no volume: cost cannot rank */
    ev.monthly_volume = NAN;
    v = decide();
    cr_assert_not(v.rules[TW_RULE_COST_VOLUME].fired);
    cr_assert(strstr(v.rules[TW_RULE_COST_VOLUME].text, "no monthly volume"));
    tw_verdict_free(&v);
}

Test(verdict, confidence_medium_small_eval_and_small_finetune)
{
    arm("p", TW_ARM_PROMPT, 300);
    ev.eval_rows = 250;
    ev.eval_level = TW_AUDIT_WARNINGS;
    tw_verdict v = decide();
    cr_assert_eq(v.confidence, TW_CONF_MEDIUM);
    cr_assert(strstr(v.confidence_reason, "250 rows"));
    cr_assert(has_change(&v, "~50 more evaluation rows"));
    tw_verdict_free(&v);
    ev.eval_rows = NITEMS;
    ev.eval_level = TW_AUDIT_READY;
    ev.train_rows = 400;
    arm("l", TW_ARM_LORA, 360);
    v = decide();
    cr_assert_str_eq(rec_name(&v), "l");
    cr_assert_eq(v.confidence, TW_CONF_MEDIUM);
    cr_assert(strstr(v.confidence_reason, "trained on 400 rows"), "%s", v.confidence_reason);
    tw_verdict_free(&v);
}

Test(verdict, learning_curve_projection_in_changes)
{
    arm("p", TW_ARM_PROMPT, 360);
    arm("l", TW_ARM_LORA, 300);
    /* exact curve 0.4 + 0.05 ln n: reaches 0.9 at n = e^10 = 22026 */
    double ns[] = {50, 100, 250, 500, 1000};
    for (int i = 0; i < 5; i++) tw_evidence_add_curve(&ev, ns[i], 0.4 + 0.05 * log(ns[i]), NULL);
    tw_verdict v = decide();
    cr_assert(v.curve.ok);
    cr_assert_float_eq(v.curve.b, 0.05, 1e-12);
    cr_assert(has_change(&v, "with ~21000 more labels (22000 in all)"), "%s", v.n_changes ? v.changes[0] : "");
    tw_verdict_free(&v);
}

Test(verdict, text_and_json)
{
    api(arm("p", TW_ARM_PROMPT, 330), 1000, 10, 1, 1);
    hourly(arm("l", TW_ARM_LORA, 332), 0.36, 1, 1200);
    ev.monthly_volume = 500000;
    tw_verdict v = decide();
    tw_buf b = {0};
    tw_error e = {0};
    cr_assert_eq(tw_verdict_text(&b, &v, &ev, &e), TW_OK);
    cr_assert(strstr(b.data, "Verdict: finetune: use 'l'"), "%s", b.data);
    cr_assert(strstr(b.data, "[x] R9-cost-at-volume"));
    cr_assert(strstr(b.data, "[ ] R7-classic-enough"));
    tw_buf_free(&b);
    json_t *j;
    cr_assert_eq(tw_verdict_json(&j, &v, &ev, &e), TW_OK);
    cr_assert_str_eq(json_string_value(json_object_get(j, "decision")), "finetune");
    cr_assert_str_eq(json_string_value(json_object_get(j, "recommended")), "l");
    cr_assert_str_eq(json_string_value(json_object_get(j, "runner_up")), "p");
    cr_assert_eq(json_array_size(json_object_get(j, "rules")), TW_RULE_COUNT);
    json_t *be = json_array_get(json_object_get(j, "breakeven"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(be, "kind")), "cross");
    cr_assert_float_eq(json_real_value(json_array_get(json_object_get(be, "volumes"), 0)), 1200 / (12 * 9.1e-4), 1e-6);
    cr_assert(json_is_null(json_object_get(j, "learning_curve")));
    json_decref(j);
    tw_verdict_free(&v);
}

/* ---- learning curve fit --------------------------------------------------------- */

Test(lcurve, exact_points_known_answer)
{
    tw_lc_point p[4] = {{100, 0}, {200, 0}, {400, 0}, {800, 0}};
    for (int i = 0; i < 4; i++) p[i].metric = 0.3 + 0.04 * log(p[i].n);
    tw_lc_fit f;
    tw_error e = {0};
    cr_assert_eq(tw_lc_fit_points(&f, p, 4, &e), TW_OK);
    cr_assert_float_eq(f.a, 0.3, 1e-12);
    cr_assert_float_eq(f.b, 0.04, 1e-12);
    double half;
    cr_assert_float_eq(tw_lc_predict(&f, 1600, 1, &half), 0.3 + 0.04 * log(1600), 1e-12);
    cr_assert_float_eq(half, 0, 1e-9);
    cr_assert_float_eq(tw_lc_n_for(&f, 0.3 + 0.04 * log(5000)), 5000, 1e-6);
    cr_assert_eq(tw_lc_predict(&f, 1e30, 1, NULL), 1.0);   /* capped */
}

Test(lcurve, noisy_points_interval)
{
    /* x = ln n in {0, 1, 2} (n = 1, e, e^2); y = 1, 3, 2: b = 0.5, a = 1.5,
     * residuals -0.5, 1, -0.5 -> s = sqrt(1.5 / 1); at x = 3: y = 3, se = s sqrt(1/3 + 4/2) */
    tw_lc_point p[3] = {{1, 1}, {exp(1), 3}, {exp(2), 2}};
    tw_lc_fit f;
    tw_error e = {0};
    cr_assert_eq(tw_lc_fit_points(&f, p, 3, &e), TW_OK);
    cr_assert_float_eq(f.b, 0.5, 1e-12);
    cr_assert_float_eq(f.a, 1.5, 1e-12);
    cr_assert_float_eq(f.s, sqrt(1.5), 1e-12);
    double half;
    cr_assert_float_eq(tw_lc_predict(&f, exp(3), 100, &half), 3.0, 1e-9);
    cr_assert_float_eq(half, 12.706 * sqrt(1.5) * sqrt(1.0 / 3 + 4.0 / 2), 1e-9);
    /* a falling curve never reaches a higher metric */
    tw_lc_point q[2] = {{10, 0.8}, {100, 0.7}};
    cr_assert_eq(tw_lc_fit_points(&f, q, 2, &e), TW_OK);
    cr_assert(isnan(tw_lc_n_for(&f, 0.9)));
    tw_lc_predict(&f, 1000, 1, &half);
    cr_assert(isnan(half));   /* two points: no uncertainty estimate */
}

Test(lcurve, degenerate_inputs)
{
    tw_lc_fit f;
    tw_error e = {0};
    tw_lc_point same[2] = {{100, 0.5}, {100, 0.6}};
    cr_assert_eq(tw_lc_fit_points(&f, same, 2, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "two different"));
    tw_lc_point one[1] = {{100, 0.5}};
    cr_assert_eq(tw_lc_fit_points(&f, one, 1, &e), TW_ERR_INVALID);
    tw_lc_point bad[2] = {{0, 0.5}, {10, 0.6}};
    cr_assert_eq(tw_lc_fit_points(&f, bad, 2, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "point 0"));
}

Test(verdict, r9_parallel_costs_never_cross)
{
    /* two tied prompt arms, same tokens, one model 4x the price: no volume changes the order */
    api(arm("big", TW_ARM_PROMPT, 332), 800, 5, 2.0, 8.0);
    api(arm("small", TW_ARM_PROMPT, 330), 800, 5, 0.5, 2.0);
    ev.monthly_volume = 50000;
    tw_verdict v = decide();
    cr_assert(v.rules[TW_RULE_COST_VOLUME].fired);   /* preference says 'big' (higher metric), cost says 'small' */
    cr_assert_str_eq(rec_name(&v), "small");
    cr_assert_str_eq(ev.arms[v.runner_up].name, "big");
    cr_assert(has_change(&v, "no volume changes the order: 'small' is cheaper than 'big' at every volume"));
    cr_assert_float_eq(v.costs[1].per_correct, (800 * 0.5 + 5 * 2.0) / 1e6 / 0.825, 1e-12);
    tw_verdict_free(&v);
}
