/* optim.h — the optimizer of LoRA training: AdamW with decoupled weight decay
 * (Loshchilov & Hutter 2019, as torch.optim.AdamW computes it), learning-rate schedules
 * (linear warmup, then cosine or linear decay, as transformers' get_cosine_schedule_with_warmup /
 * get_linear_schedule_with_warmup, with an optional floor), and global-norm gradient
 * clipping (torch.nn.utils.clip_grad_norm_).
 *
 * Parameters, gradients and the two moment buffers are flat float arrays of the same
 * length (the trainer keeps all LoRA A / B matrices in one allocation, llm.c style), so
 * one call updates everything.
 *
 * Deliberately not here: parameter groups with different hyper-parameters (LoRA training
 * uses one), AMSGrad, fused multi-tensor tricks, what to do with the norm (logging). */
#ifndef TW_TRAIN_OPTIM_H
#define TW_TRAIN_OPTIM_H

#include <stdint.h>

typedef struct tw_adamw_params {
    float beta1, beta2;      /* default 0.9, 0.999 */
    float eps;               /* default 1e-8 */
    float weight_decay;      /* decoupled: p -= lr * wd * p; default 0.01 (torch's) */
} tw_adamw_params;

tw_adamw_params tw_adamw_default_params(void);

/* One AdamW step t (1-based: the bias corrections use beta^t) at learning rate lr, over n
 * parameters, exactly torch.optim.AdamW's (non-fused, non-foreach, amsgrad off) order:
 *   p *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * param (n), m (n), v (n) updated in place (m, v zero before step 1); grad (n) read. */
void tw_adamw_step(float *param, float *m, float *v, const float *grad, int64_t n, int64_t t, float lr,
                   const tw_adamw_params *p);

typedef enum tw_lr_schedule {
    TW_LR_CONSTANT = 0,      /* warmup, then lr_max */
    TW_LR_LINEAR = 1,        /* warmup, then linear to lr_min at total_steps */
    TW_LR_COSINE = 2         /* warmup, then half a cosine to lr_min at total_steps */
} tw_lr_schedule;

/* Learning rate for optimizer step `step` (0-based: the rate of the (step+1)-th update,
 * as transformers' LambdaLR schedulers give before their first scheduler.step()):
 *   step < warmup: lr_max * step / warmup (0 at step 0, as transformers);
 *   after: lr_min + (lr_max - lr_min) * f, f = 1 (constant), (total - step) / (total - warmup)
 *   (linear), 0.5 (1 + cos(pi progress)) (cosine), progress = (step - warmup) / (total - warmup),
 *   clamped to [0, 1]. lr_min = 0 reproduces transformers' schedules exactly; lr_min = r
 *   lr_max is get_cosine_with_min_lr_schedule_with_warmup's min_lr_rate r. */
float tw_lr_at(tw_lr_schedule kind, int64_t step, int64_t warmup, int64_t total_steps, float lr_max, float lr_min);

/* Global L2 norm of grad (n) (double accumulation). */
double tw_grad_norm(const float *grad, int64_t n);
/* torch.nn.utils.clip_grad_norm_(max_norm): norm = tw_grad_norm; when
 * max_norm / (norm + 1e-6) < 1, grad *= that coefficient. Returns the norm before
 * clipping. max_norm <= 0: no clipping (the norm is still returned). */
double tw_grad_clip(float *grad, int64_t n, float max_norm);

#endif /* TW_TRAIN_OPTIM_H */
