/* test_cost.c — the cost model against hand-computed numbers: API, hourly (with
 * concurrency and an always-on floor), fine-tuning setup and retraining, cost per
 * correct answer, break-even volumes (crossing, parallel, identical, free arms, zero
 * volume, kinks), validation errors and the preset price table. */
#include "testutil.h"

#include "decide/cost.h"

#include <math.h>

#define NEAR(x, y) cr_assert(fabs((double)(x) - (double)(y)) <= 1e-9 * (1 + fabs((double)(y))), "%s = %.12g, expected %.12g", #x, (double)(x), (double)(y))

static tw_cost_curve curve(const tw_cost_params *p)
{
    tw_cost_curve c;
    tw_error e = {0};
    cr_assert_eq(tw_cost_curve_make(&c, p, &e), TW_OK, "%s", e.msg);
    return c;
}

Test(cost, api_per_call_monthly_year_one)
{
    tw_cost_params p = tw_cost_default_params();
    p.kind = TW_BILL_API;
    p.tokens_in = 500;
    p.tokens_out = 20;
    p.input_per_mtok = 0.15;
    p.output_per_mtok = 0.60;
    tw_cost_curve c = curve(&p);
    NEAR(c.per_call, (500 * 0.15 + 20 * 0.60) / 1e6);   /* 8.7e-5 */
    NEAR(tw_cost_monthly(&c, 100000), 8.7);
    NEAR(tw_cost_year_one(&c, 100000), 104.4);
    NEAR(tw_cost_per_call_year_one(&c, 100000), 8.7e-5);
    /* a fine-tune that drops 400 prompt tokens */
    p.prompt_tokens_saved = 400;
    c = curve(&p);
    NEAR(c.per_call, (100 * 0.15 + 20 * 0.60) / 1e6);
    p.prompt_tokens_saved = 900;   /* floored at zero input tokens */
    c = curve(&p);
    NEAR(c.per_call, 20 * 0.60 / 1e6);
}

Test(cost, hourly_with_concurrency_and_floor)
{
    tw_cost_params p = tw_cost_default_params();
    p.kind = TW_BILL_HOURLY;
    p.seconds_per_call = 0.5;
    p.concurrency = 4;
    p.per_hour = 2.0;
    tw_cost_curve c = curve(&p);
    NEAR(c.hours_per_call, 0.5 / 4 / 3600);
    NEAR(c.per_call, 2.0 * 0.5 / 4 / 3600);
    NEAR(tw_cost_monthly(&c, 1e6), 1e6 * 0.5 / 4 / 3600 * 2.0);   /* 69.44 */
    /* always-on machine: 730 h/month floor = $1460/month until the traffic exceeds it */
    p.min_hours_month = 730;
    c = curve(&p);
    NEAR(c.floor_month, 1460);
    NEAR(c.K, 730 / (0.5 / 4 / 3600));
    NEAR(tw_cost_monthly(&c, 1e6), 1460);
    NEAR(tw_cost_year_one(&c, 1e6), 17520);
    NEAR(tw_cost_monthly(&c, 3e7), 3e7 * 0.5 / 4 / 3600 * 2.0);   /* above the floor */
    NEAR(tw_cost_monthly(&c, 0), 1460);
}

Test(cost, finetune_setup_and_retraining)
{
    tw_cost_params p = tw_cost_default_params();
    p.label_hours = 10;
    p.label_rate = 30;
    p.train_seconds = 7200;
    p.train_speed = 2;        /* target hardware twice as fast: 1 h */
    p.train_per_hour = 4;
    p.retrains_per_year = 4;
    p.retrain_label_hours = 2;
    tw_cost_curve c = curve(&p);
    NEAR(c.setup, 300 + 4);
    NEAR(c.retrain_year, 4 * (4 + 60));
    NEAR(tw_cost_year_one(&c, 0), 304 + 256);
    NEAR(tw_cost_monthly(&c, 5000), 256.0 / 12);
    cr_assert(isinf(tw_cost_per_call_year_one(&c, 0)));
}

Test(cost, per_correct_answer)
{
    tw_cost_params p = tw_cost_default_params();
    p.kind = TW_BILL_API;
    p.tokens_in = 1000;
    p.tokens_out = 0;
    p.input_per_mtok = 1;
    p.output_per_mtok = 1;
    tw_cost_curve c = curve(&p);
    NEAR(tw_cost_per_correct(&c, 1000, 0.5), 2e-3);
    cr_assert(isinf(tw_cost_per_correct(&c, 1000, 0)));
    cr_assert(isnan(tw_cost_per_correct(&c, 1000, NAN)));
    tw_cost_params f = tw_cost_default_params();
    tw_cost_curve cf = curve(&f);
    cr_assert_eq(tw_cost_per_call_year_one(&cf, 0), 0.0);
    cr_assert_eq(tw_cost_per_correct(&cf, 100, 0.9), 0.0);
}

Test(cost, validation_errors_name_the_field)
{
    tw_cost_params p = tw_cost_default_params();
    tw_cost_curve c;
    tw_error e = {0};
    p.kind = TW_BILL_HOURLY;
    p.seconds_per_call = 0.1;
    p.per_hour = NAN;
    cr_assert_eq(tw_cost_curve_make(&c, &p, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "per_hour is unknown"), "%s", e.msg);
    p.per_hour = 1;
    p.concurrency = 0;
    cr_assert_eq(tw_cost_curve_make(&c, &p, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "concurrency"), "%s", e.msg);
    p = tw_cost_default_params();
    p.kind = TW_BILL_API;
    p.tokens_in = -5;
    p.tokens_out = 1;
    p.input_per_mtok = p.output_per_mtok = 1;
    cr_assert_eq(tw_cost_curve_make(&c, &p, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "tokens_in must be"), "%s", e.msg);
    p = tw_cost_default_params();
    p.train_speed = 0;
    cr_assert_eq(tw_cost_curve_make(&c, &p, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "train_speed"), "%s", e.msg);
}

static tw_cost_curve lin(double a, double b_month)
{
    tw_cost_curve c;
    memset(&c, 0, sizeof c);
    c.a = a;
    c.setup = a;
    c.per_call = b_month;
    c.b = 12 * b_month;
    return c;
}

Test(breakeven, single_crossing_closed_form)
{
    tw_cost_curve A = lin(0, 1e-3), B = lin(1200, 1e-4);
    tw_breakeven be;
    tw_breakeven_solve(&be, &A, &B);
    cr_assert_eq(be.kind, TW_BE_CROSS);
    cr_assert_eq(be.n, 1);
    NEAR(be.v[0], 1200 / (12 * (1e-3 - 1e-4)));   /* 111,111.1 calls/month */
    cr_assert_eq(be.cheaper_above[0], 1);
    tw_breakeven_solve(&be, &B, &A);   /* symmetric */
    NEAR(be.v[0], 1200 / (12 * (1e-3 - 1e-4)));
    cr_assert_eq(be.cheaper_above[0], 0);
}

Test(breakeven, parallel_identical_free_and_zero_volume)
{
    tw_breakeven be;
    tw_cost_curve A = lin(100, 1e-3), B = lin(300, 1e-3);
    tw_breakeven_solve(&be, &A, &B);
    cr_assert_eq(be.kind, TW_BE_NEVER);
    cr_assert_eq(be.cheaper, 0);
    cr_assert_eq(be.n, 0);
    tw_breakeven_solve(&be, &A, &A);
    cr_assert_eq(be.kind, TW_BE_SAME);
    tw_cost_curve F = lin(0, 0), G = lin(0, 0);
    tw_breakeven_solve(&be, &F, &G);
    cr_assert_eq(be.kind, TW_BE_SAME);
    tw_breakeven_solve(&be, &A, &F);   /* free arm cheaper everywhere */
    cr_assert_eq(be.kind, TW_BE_NEVER);
    cr_assert_eq(be.cheaper, 1);
    /* equal at V = 0 only: not a crossing at a positive volume */
    tw_cost_curve P = lin(0, 2e-3), Q = lin(0, 1e-3);
    tw_breakeven_solve(&be, &P, &Q);
    cr_assert_eq(be.kind, TW_BE_NEVER);
    cr_assert_eq(be.cheaper, 1);
}

Test(breakeven, floor_kink_gives_two_crossings)
{
    /* A: hourly, $1e-4/call with a $100/month floor -> year one max(1200, 0.0012 V), kink at 1e6 */
    tw_cost_params p = tw_cost_default_params();
    p.kind = TW_BILL_HOURLY;
    p.seconds_per_call = 3.6;
    p.per_hour = 1e-4 * 1000;   /* 3.6 s = 1e-3 h -> $1e-4 per call */
    p.min_hours_month = 1000;   /* $100 floor */
    tw_cost_curve A = curve(&p);
    NEAR(A.per_call, 1e-4);
    NEAR(A.K, 1e6);
    /* B: 600 setup + $0.9e-4/call -> 600 + 0.00108 V */
    tw_cost_curve B = lin(600, 0.9e-4);
    tw_breakeven be;
    tw_breakeven_solve(&be, &A, &B);
    cr_assert_eq(be.kind, TW_BE_CROSS);
    cr_assert_eq(be.n, 2);
    NEAR(be.v[0], 600 / 0.00108);   /* 555,555.6: A's floor overtakes B */
    cr_assert_eq(be.cheaper_above[0], 0);
    NEAR(be.v[1], 600 / (0.0012 - 0.00108));   /* 5e6: past the floor B's cheaper calls win */
    cr_assert_eq(be.cheaper_above[1], 1);
    /* a curve touching another at its kink without changing order is not a crossing */
    tw_cost_curve C = lin(1200, 0);
    tw_breakeven_solve(&be, &A, &C);
    cr_assert_eq(be.kind, TW_BE_NEVER);
    cr_assert_eq(be.cheaper, 1);
}

Test(prices, preset_table)
{
    size_t n;
    const tw_preset_price *t = tw_preset_prices(&n);
    cr_assert_gt(n, 5);
    for (size_t i = 0; i < n; i++) {
        cr_assert_gt(t[i].input_per_mtok, 0, "%s", t[i].model);
        cr_assert_geq(t[i].output_per_mtok, t[i].input_per_mtok, "%s", t[i].model);
    }
    const tw_preset_price *m = tw_preset_price_find("GPT-4o-mini");
    cr_assert_not_null(m);
    cr_assert_float_eq(m->input_per_mtok, 0.15, 1e-12);
    cr_assert_null(tw_preset_price_find("no-such-model"));
    cr_assert_null(tw_preset_price_find(NULL));
    const char *d = tw_preset_prices_date();
    cr_assert_eq(strlen(d), 10);
    cr_assert(d[4] == '-' && d[7] == '-');
}
