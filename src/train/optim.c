/* optim.c — AdamW, learning-rate schedules and gradient clipping (optim.h), following
 * torch.optim.AdamW (_single_tensor_adamw), transformers' optimization.py schedules and
 * torch.nn.utils.clip_grad_norm_, operation for operation, so a fixture from PyTorch
 * matches to float rounding.
 *
 * Deliberately not here: parameter groups, state serialization (the trainer's checkpoints
 * write m and v as they are). */
#include "train/optim.h"

#include <math.h>

tw_adamw_params tw_adamw_default_params(void)
{
    return (tw_adamw_params){.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
}

void tw_adamw_step(float *param, float *m, float *v, const float *grad, int64_t n, int64_t t, float lr,
                   const tw_adamw_params *p)
{
    const tw_adamw_params d = tw_adamw_default_params();
    if (!p) p = &d;
    const float b1 = p->beta1, b2 = p->beta2;
    /* torch computes the bias corrections in Python floats (double) from step t */
    const double bc1 = 1.0 - pow((double)b1, (double)t), bc2 = 1.0 - pow((double)b2, (double)t);
    const float step_size = (float)((double)lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float decay = 1.0f - lr * p->weight_decay;
    for (int64_t i = 0; i < n; i++) {
        const float g = grad[i];
        float x = param[i] * decay;
        m[i] += (g - m[i]) * (1.0f - b1);              /* torch: exp_avg.lerp_(grad, 1 - beta1) */
        v[i] = v[i] * b2 + (1.0f - b2) * g * g;         /* exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2) */
        const float denom = sqrtf(v[i]) / bc2_sqrt + p->eps;
        x -= step_size * (m[i] / denom);
        param[i] = x;
    }
}

float tw_lr_at(tw_lr_schedule kind, int64_t step, int64_t warmup, int64_t total_steps, float lr_max, float lr_min)
{
    if (step < warmup) return (float)((double)lr_max * (double)step / (double)(warmup > 0 ? warmup : 1));
    double f = 1.0;
    if (kind != TW_LR_CONSTANT) {
        const int64_t span = total_steps - warmup > 1 ? total_steps - warmup : 1;
        double progress = (double)(step - warmup) / (double)span;
        if (progress > 1) progress = 1;
        f = kind == TW_LR_LINEAR ? 1.0 - progress : 0.5 * (1.0 + cos(M_PI * progress));
        if (f < 0) f = 0;
    }
    return (float)((double)lr_min + ((double)lr_max - lr_min) * f);
}

double tw_grad_norm(const float *grad, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)grad[i] * grad[i];
    return sqrt(s);
}

double tw_grad_clip(float *grad, int64_t n, float max_norm)
{
    const double norm = tw_grad_norm(grad, n);
    if (max_norm <= 0) return norm;
    const double coef = (double)max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        const float c = (float)coef;
        for (int64_t i = 0; i < n; i++) grad[i] *= c;
    }
    return norm;
}
