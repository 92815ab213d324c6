/* prices.c — the shipped PRESET price table for common API models (USD per 1M tokens,
 * standard tier, no batch or cached-input discounts), as listed on the providers' public
 * price pages on the date below. It is a convenience default only: prices in the task
 * file (`prices:`) always override it, and list prices change — check them before
 * relying on a verdict that turns on cost.
 *
 * To update: edit the rows and PRICES_DATE together (one commit), keep names exactly as
 * the provider's API spells them.
 * Deliberately not here: self-hosted hourly prices (hardware and region vary too much to
 * preset: the task file gives `per_hour`). */
#include "decide/cost.h"

#include <strings.h>

#define PRICES_DATE "2025-06-01"   /* assumed date of the figures below */

static const tw_preset_price PRICES[] = {
    /* OpenAI */
    {"gpt-4o", "openai", 2.50, 10.00},
    {"gpt-4o-mini", "openai", 0.15, 0.60},
    {"gpt-4.1", "openai", 2.00, 8.00},
    {"gpt-4.1-mini", "openai", 0.40, 1.60},
    {"gpt-4.1-nano", "openai", 0.10, 0.40},
    {"o4-mini", "openai", 1.10, 4.40},
    {"o3-mini", "openai", 1.10, 4.40},
    /* OpenAI, inference on a fine-tuned model (training is billed separately per token) */
    {"ft:gpt-4o-mini", "openai", 0.30, 1.20},
    {"ft:gpt-4.1-mini", "openai", 0.80, 3.20},
    {"ft:gpt-4.1-nano", "openai", 0.20, 0.80},
    /* Anthropic */
    {"claude-opus-4", "anthropic", 15.00, 75.00},
    {"claude-sonnet-4", "anthropic", 3.00, 15.00},
    {"claude-3-7-sonnet", "anthropic", 3.00, 15.00},
    {"claude-3-5-haiku", "anthropic", 0.80, 4.00},
    /* Google (prompts up to 200k tokens) */
    {"gemini-2.5-pro", "google", 1.25, 10.00},
    {"gemini-2.5-flash", "google", 0.30, 2.50},
    {"gemini-2.0-flash", "google", 0.10, 0.40},
};

const char *tw_preset_prices_date(void) { return PRICES_DATE; }

const tw_preset_price *tw_preset_prices(size_t *n)
{
    *n = sizeof PRICES / sizeof PRICES[0];
    return PRICES;
}

const tw_preset_price *tw_preset_price_find(const char *model)
{
    if (!model) return NULL;
    for (size_t i = 0; i < sizeof PRICES / sizeof PRICES[0]; i++)
        if (strcasecmp(PRICES[i].model, model) == 0) return &PRICES[i];
    return NULL;
}
