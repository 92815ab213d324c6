/* test_config.c — model hyper-parameters from Hugging Face config.json, in both the
 * transformers 4 form (rope_theta + rope_scaling) and the transformers 5 form
 * (rope_parameters), which must give the same configuration. */
#include "testutil.h"
#include "model/config.h"

#define BASE "\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 64, " \
             "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, " \
             "\"intermediate_size\": 128, \"vocab_size\": 512, \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-6"

static tw_model_config load(const char *json)
{
    char *dir = tw_test_tmpdir();
    char *p = tw_test_write(dir, "config.json", json);
    tw_model_config c;
    tw_error e;
    cr_assert_eq(tw_model_config_from_hf(&c, p, &e), TW_OK, "%s", e.msg);
    free(p);
    free(dir);
    return c;
}

Test(config, rope_theta_old_and_new_forms_agree)
{
    tw_model_config a = load("{" BASE ", \"rope_theta\": 500000.0}");
    tw_model_config b = load("{" BASE ", \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 500000.0}}");
    cr_assert_float_eq(a.rope_freq_base, 500000.0f, 1e-3);
    cr_assert_float_eq(b.rope_freq_base, 500000.0f, 1e-3);
    cr_assert_eq(b.rope_scaling, TW_ROPE_SCALING_NONE);
}

Test(config, llama3_scaling_in_rope_parameters)
{
    tw_model_config a = load("{" BASE ", \"rope_theta\": 500000.0, \"rope_scaling\": {\"rope_type\": \"llama3\", "
                             "\"factor\": 32.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                             "\"original_max_position_embeddings\": 8192}}");
    tw_model_config b = load("{" BASE ", \"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0, "
                             "\"factor\": 32.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                             "\"original_max_position_embeddings\": 8192}}");
    cr_assert_eq(a.rope_scaling, TW_ROPE_SCALING_LLAMA3);
    cr_assert_eq(b.rope_scaling, TW_ROPE_SCALING_LLAMA3);
    cr_assert_float_eq(b.rope_scale, 32.0f, 1e-6);
    cr_assert_eq(b.rope_orig_ctx, 8192);
    cr_assert_float_eq(a.rope_freq_base, b.rope_freq_base, 1e-3);
}
