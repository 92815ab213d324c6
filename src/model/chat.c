/* chat.c — chat templates (see chat.h): family detection from a template's markers, the
 * family's stop strings and built-in templates, compiling a model's template (with the
 * fallback to the built-in one when it uses Jinja beyond the subset), rendering a
 * conversation, locating the last assistant message in a rendering (spans), and loading a
 * user-supplied template file (with the stop string of a template of no known family).
 *
 * The Jinja itself — lexing, parsing and evaluating a template — is the interpreter behind
 * model/jinja.h (jinja_parse.c, jinja_eval.c, jinja_value.c); this file only decides which
 * template to run and with which variables (transformers' apply_chat_template ones).
 *
 * Deliberately not here: the interpreter (jinja*.c), tokenizing the rendered prompt
 * (tokenizer.c), reading the template out of a GGUF file (gguf.c), tools / function
 * calling and multimodal content (messages are plain text), chat JSONL datasets
 * (src/task/chat.c). */
#include "model/chat.h"
#include "model/jinja.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* =====================================================================================
 * families, markers, built-in templates
 * ===================================================================================== */

const char *tw_chat_family_name(tw_chat_family f)
{
    switch (f) {
    case TW_CHAT_CHATML: return "chatml";
    case TW_CHAT_QWEN3: return "qwen3";
    case TW_CHAT_LLAMA3: return "llama3";
    case TW_CHAT_LLAMA2: return "llama2";
    case TW_CHAT_MISTRAL: return "mistral";
    case TW_CHAT_GEMMA: return "gemma";
    case TW_CHAT_ZEPHYR: return "zephyr";
    case TW_CHAT_CUSTOM: return "custom";
    default: return "unknown";
    }
}

const char *const *tw_chat_family_stops(tw_chat_family f)
{
    static const char *const chatml[] = {"<|im_end|>", "<|endoftext|>", NULL};
    static const char *const llama3[] = {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", NULL};
    static const char *const gemma[] = {"<end_of_turn>", "<eos>", NULL};
    static const char *const eos[] = {"</s>", NULL};
    static const char *const none[] = {NULL};
    switch (f) {
    case TW_CHAT_CHATML: case TW_CHAT_QWEN3: return chatml;
    case TW_CHAT_LLAMA3: return llama3;
    case TW_CHAT_GEMMA: return gemma;
    case TW_CHAT_LLAMA2: case TW_CHAT_MISTRAL: case TW_CHAT_ZEPHYR: return eos;
    default: return none;
    }
}

/* Detection: markers that every template of a family writes, checked most specific first.
 * (Substrings of the template text, so quoting style and whitespace do not matter.) */
static tw_chat_family detect(const char *s)
{
    if (strstr(s, "<|im_start|>"))
        return (strstr(s, "<think>") || strstr(s, "enable_thinking")) ? TW_CHAT_QWEN3 : TW_CHAT_CHATML;
    if (strstr(s, "<|start_header_id|>") && strstr(s, "<|end_header_id|>")) return TW_CHAT_LLAMA3;
    if (strstr(s, "<start_of_turn>")) return TW_CHAT_GEMMA;
    if (strstr(s, "[INST]")) return strstr(s, "<<SYS>>") ? TW_CHAT_LLAMA2 : TW_CHAT_MISTRAL;
    if (strstr(s, "<|user|>") && strstr(s, "<|assistant|>") && !strstr(s, "<|end|>")) return TW_CHAT_ZEPHYR;
    return TW_CHAT_UNKNOWN;
}

tw_status tw_chat_detect(const char *template_src, tw_chat_family *out, tw_error *err)
{
    *out = TW_CHAT_UNKNOWN;
    if (!template_src || !*template_src)
        return tw_error_set(err, TW_ERR_INVALID,
                            "the model has no chat template (no tokenizer.chat_template); "
                            "pass --chat-template FILE (a Jinja template) or a built-in name");
    *out = detect(template_src);
    if (*out == TW_CHAT_UNKNOWN)
        return tw_error_set(err, TW_ERR_UNSUPPORTED,
                            "unrecognised chat template: it has none of the markers of the supported "
                            "families (<|im_start|> ChatML/Qwen, <|start_header_id|> Llama 3, [INST] "
                            "Llama 2/Mistral, <start_of_turn> Gemma, <|user|> Zephyr); pass "
                            "--chat-template FILE with a Jinja template to use it anyway");
    return TW_OK;
}

/* Built-in templates: compact versions of the published templates without the tool-calling
 * branches (tests/test_chat.c checks each against the fixture of the template it mirrors). */
typedef struct builtin {
    const char *name;
    tw_chat_family family;
    const char *src;
} builtin;

static const builtin BUILTINS[] = {
    {"chatml", TW_CHAT_CHATML,
     "{% for message in messages %}"
     "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
     "{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"},
    {"qwen3", TW_CHAT_QWEN3,
     "{%- if messages[0].role == 'system' %}\n"
     "    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}\n"
     "{%- endif %}\n"
     "{%- set ns = namespace(found=false, last_query_index=messages|length - 1) %}\n"
     "{%- for message in messages[::-1] %}\n"
     "    {%- if not ns.found and message.role == 'user' and not (message.content.startswith('<tool_response>') "
     "and message.content.endswith('</tool_response>')) %}\n"
     "        {%- set ns.found = true %}\n"
     "        {%- set ns.last_query_index = (messages|length - 1) - loop.index0 %}\n"
     "    {%- endif %}\n"
     "{%- endfor %}\n"
     "{%- for message in messages %}\n"
     "    {%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}\n"
     "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}\n"
     "    {%- elif message.role == 'assistant' %}\n"
     "        {%- set content = message.content %}\n"
     "        {%- set reasoning_content = '' %}\n"
     "        {%- if '</think>' in content %}\n"
     "            {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}\n"
     "            {%- set content = content.split('</think>')[-1].lstrip('\\n') %}\n"
     "        {%- endif %}\n"
     "        {%- if loop.index0 > ns.last_query_index and (loop.last or reasoning_content) %}\n"
     "            {{- '<|im_start|>assistant\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}\n"
     "        {%- else %}\n"
     "            {{- '<|im_start|>assistant\\n' + content }}\n"
     "        {%- endif %}\n"
     "        {{- '<|im_end|>\\n' }}\n"
     "    {%- endif %}\n"
     "{%- endfor %}\n"
     "{%- if add_generation_prompt %}\n"
     "    {{- '<|im_start|>assistant\\n' }}\n"
     "    {%- if enable_thinking is defined and enable_thinking is false %}\n"
     "        {{- '<think>\\n\\n</think>\\n\\n' }}\n"
     "    {%- endif %}\n"
     "{%- endif %}\n"},
    {"llama3", TW_CHAT_LLAMA3,
     "{% for message in messages %}"
     "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' %}"
     "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
     "{{ content }}{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"},
    {"llama3.1", TW_CHAT_LLAMA3,
     "{{- bos_token }}\n"
     "{%- if not date_string is defined %}\n"
     "    {%- set date_string = '26 Jul 2024' %}\n"
     "{%- endif %}\n"
     "{%- if messages[0]['role'] == 'system' %}\n"
     "    {%- set system_message = messages[0]['content'] | trim %}\n"
     "    {%- set messages = messages[1:] %}\n"
     "{%- else %}\n"
     "    {%- set system_message = '' %}\n"
     "{%- endif %}\n"
     "{{- '<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023\\nToday Date: ' + date_string + '\\n\\n' }}\n"
     "{{- system_message + '<|eot_id|>' }}\n"
     "{%- for message in messages %}\n"
     "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}\n"
     "{%- endfor %}\n"
     "{%- if add_generation_prompt %}\n"
     "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
     "{%- endif %}\n"},
    {"llama2", TW_CHAT_LLAMA2,
     "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
     "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
     "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
     "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
     "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
     "{% if loop.index0 == 0 and system_message != false %}"
     "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
     "{% else %}{% set content = message['content'] %}{% endif %}"
     "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
     "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}"
     "{% endfor %}"},
    {"mistral", TW_CHAT_MISTRAL,
     "{%- if messages[0]['role'] == 'system' %}\n"
     "    {%- set system_message = messages[0]['content'] %}\n"
     "    {%- set loop_messages = messages[1:] %}\n"
     "{%- else %}\n"
     "    {%- set loop_messages = messages %}\n"
     "{%- endif %}\n"
     "{{- bos_token }}\n"
     "{%- for message in loop_messages %}\n"
     "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
     "        {{- raise_exception('After the optional system message, conversation roles must alternate "
     "user/assistant/user/assistant/...') }}\n"
     "    {%- endif %}\n"
     "    {%- if message['role'] == 'user' %}\n"
     "        {%- if loop.last and system_message is defined %}\n"
     "            {{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}\n"
     "        {%- else %}\n"
     "            {{- '[INST] ' + message['content'] + '[/INST]' }}\n"
     "        {%- endif %}\n"
     "    {%- elif message['role'] == 'assistant' %}\n"
     "        {{- ' ' + message['content'] + eos_token }}\n"
     "    {%- else %}\n"
     "        {{- raise_exception('Only user and assistant roles are supported, with the exception of an "
     "initial optional system message!') }}\n"
     "    {%- endif %}\n"
     "{%- endfor %}\n"},
    {"gemma", TW_CHAT_GEMMA,
     "{{ bos_token }}\n"
     "{%- if messages[0]['role'] == 'system' -%}\n"
     "    {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
     "    {%- set loop_messages = messages[1:] -%}\n"
     "{%- else -%}\n"
     "    {%- set first_user_prefix = '' -%}\n"
     "    {%- set loop_messages = messages -%}\n"
     "{%- endif -%}\n"
     "{%- for message in loop_messages -%}\n"
     "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
     "        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}\n"
     "    {%- endif -%}\n"
     "    {%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}\n"
     "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}\n"
     "    {{- message['content'] | trim }}\n"
     "    {{- '<end_of_turn>\\n' }}\n"
     "{%- endfor -%}\n"
     "{%- if add_generation_prompt -%}\n"
     "    {{ '<start_of_turn>model\\n' }}\n"
     "{%- endif -%}\n"},
    {"zephyr", TW_CHAT_ZEPHYR,
     "{% for message in messages %}\n"
     "{% if message['role'] == 'user' %}\n"
     "{{ '<|user|>\\n' + message['content'] + eos_token }}\n"
     "{% elif message['role'] == 'system' %}\n"
     "{{ '<|system|>\\n' + message['content'] + eos_token }}\n"
     "{% elif message['role'] == 'assistant' %}\n"
     "{{ '<|assistant|>\\n' + message['content'] + eos_token }}\n"
     "{% endif %}\n"
     "{% if loop.last and add_generation_prompt %}\n"
     "{{ '<|assistant|>' }}\n"
     "{% endif %}\n"
     "{% endfor %}"},
    {NULL, TW_CHAT_UNKNOWN, NULL},
};

/* The built-in template a model template of family f falls back to. */
static const builtin *fallback_for(tw_chat_family f, const char *src)
{
    const char *name = tw_chat_family_name(f);
    if (f == TW_CHAT_LLAMA3 && strstr(src, "Cutting Knowledge Date")) name = "llama3.1";
    for (const builtin *b = BUILTINS; b->name; b++)
        if (strcmp(b->name, name) == 0) return b;
    return NULL;
}

/* =====================================================================================
 * templates
 * ===================================================================================== */

#define STOPS_MAX 4

struct tw_chat_template {
    tw_chat_family family;
    bool fallback;
    char *source;                       /* the Jinja in use */
    tw_jinja *prog;                     /* source, compiled */
    char *stop_own[STOPS_MAX];          /* TW_CHAT_CUSTOM: derived stop strings */
    const char *stops[STOPS_MAX + 1];
};

/* Compile t->source into t->prog. Errors are "<label>: line N: ...". */
static tw_status compile(tw_chat_template *t, const char *label, tw_error *err)
{
    return tw_jinja_compile(&t->prog, t->source, label, err);
}

void tw_chat_template_free(tw_chat_template *t)
{
    if (!t) return;
    tw_jinja_free(t->prog);
    for (size_t i = 0; i < STOPS_MAX; i++) free(t->stop_own[i]);
    free(t->source);
    free(t);
}

static tw_status template_alloc(tw_chat_template **out, const char *src, tw_chat_family f, tw_error *err)
{
    tw_chat_template *t = calloc(1, sizeof *t);
    if (!t) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    t->source = strdup(src);
    if (!t->source) {
        free(t);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    t->family = f;
    const char *const *st = tw_chat_family_stops(f);
    for (size_t i = 0; st[i] && i < STOPS_MAX; i++) t->stops[i] = st[i];
    *out = t;
    return TW_OK;
}

tw_status tw_chat_template_new(tw_chat_template **out, const char *src, tw_error *err)
{
    *out = NULL;
    tw_chat_family f;
    tw_status st = tw_chat_detect(src, &f, err);
    if (st) return st;
    size_t bad;
    if (!tw_utf8_valid(src, strlen(src), &bad))
        return tw_error_set(err, TW_ERR_PARSE, "chat template: offset %zu: invalid UTF-8", bad);
    tw_chat_template *t;
    if ((st = template_alloc(&t, src, f, err))) return st;
    tw_error perr;
    tw_error_clear(&perr);
    st = compile(t, "chat template", &perr);
    if (st == TW_ERR_NOMEM) {
        tw_chat_template_free(t);
        return tw_error_set(err, st, "%s", perr.msg);
    }
    if (st) {
        /* Jinja beyond the subset: the family's built-in template renders instead */
        const builtin *b = fallback_for(f, src);
        tw_chat_template_free(t);
        if (!b) return tw_error_set(err, st, "%s", perr.msg);
        tw_log(TW_LOG_WARN, "%s; using the built-in '%s' template instead (pass --chat-template FILE to override)",
               perr.msg, b->name);
        if ((st = template_alloc(&t, b->src, f, err))) return st;
        if ((st = compile(t, "built-in chat template", err))) {
            tw_chat_template_free(t);
            return st;
        }
        t->fallback = true;
    }
    *out = t;
    return TW_OK;
}

tw_status tw_chat_template_builtin(tw_chat_template **out, const char *name, tw_error *err)
{
    *out = NULL;
    for (const builtin *b = BUILTINS; b->name; b++) {
        if (!name || strcmp(b->name, name) != 0) continue;
        tw_chat_template *t;
        tw_status st = template_alloc(&t, b->src, b->family, err);
        if (st) return st;
        if ((st = compile(t, "built-in chat template", err))) {
            tw_chat_template_free(t);
            return st;
        }
        *out = t;
        return TW_OK;
    }
    return tw_error_set(err, TW_ERR_INVALID,
                        "unknown built-in chat template '%s' (expected chatml, qwen3, llama3, llama3.1, llama2, "
                        "mistral, gemma or zephyr)", name ? name : "(null)");
}

tw_chat_family tw_chat_template_family(const tw_chat_template *t) { return t->family; }
const char *tw_chat_template_source(const tw_chat_template *t) { return t->source; }
bool tw_chat_template_fallback(const tw_chat_template *t) { return t->fallback; }
const char *const *tw_chat_template_stops(const tw_chat_template *t) { return t->stops; }

tw_chat_opts tw_chat_default_opts(void)
{
    tw_chat_opts o = {.add_generation_prompt = false, .enable_thinking = -1, .now = 0};
    return o;
}

/* =====================================================================================
 * rendering
 * ===================================================================================== */

static tw_status render(const tw_chat_template *t, const tw_chat_msg *msgs, size_t n, const tw_chat_opts *opts,
                        tw_buf *out, tw_error *err)
{
    const tw_chat_opts o_val = opts ? *opts : tw_chat_default_opts();
    const tw_chat_opts *const o = &o_val;
    if (n > 0 && !msgs) return tw_error_set(err, TW_ERR_INVALID, "chat render: messages is NULL");
    for (size_t i = 0; i < n; i++) {
        size_t bad;
        if (!msgs[i].role || !msgs[i].content)
            return tw_error_set(err, TW_ERR_INVALID, "messages[%zu]: %s is NULL", i, msgs[i].role ? "content" : "role");
        if (!tw_utf8_valid(msgs[i].content, strlen(msgs[i].content), &bad))
            return tw_error_set(err, TW_ERR_INVALID, "messages[%zu].content: invalid UTF-8 at byte %zu", i, bad);
        if (!tw_utf8_valid(msgs[i].role, strlen(msgs[i].role), &bad))
            return tw_error_set(err, TW_ERR_INVALID, "messages[%zu].role: invalid UTF-8 at byte %zu", i, bad);
    }
    const char *toks[3] = {o->bos_token, o->eos_token, o->date_string};
    for (size_t i = 0; i < 3; i++) {
        size_t bad;
        if (toks[i] && !tw_utf8_valid(toks[i], strlen(toks[i]), &bad))
            return tw_error_set(err, TW_ERR_INVALID, "chat render: %s is not valid UTF-8",
                                i == 0 ? "bos_token" : i == 1 ? "eos_token" : "date_string");
    }

    tw_jinja_vars v = {
        .messages = msgs,
        .n_messages = n,
        .add_generation_prompt = o->add_generation_prompt,
        .bos_token = o->bos_token,
        .eos_token = o->eos_token,
        .date_string = o->date_string,
        .enable_thinking = o->enable_thinking,
        .now = o->now,
    };
    return tw_jinja_render(t->prog, t->fallback ? "built-in chat template" : "chat template", &v, out, err);
}

tw_status tw_chat_render_ex(const tw_chat_template *t, const tw_chat_msg *msgs, size_t n, const tw_chat_opts *o,
                            tw_buf *out, tw_error *err)
{
    return render(t, msgs, n, o, out, err);
}

tw_status tw_chat_render(const tw_chat_template *t, const tw_chat_msg *msgs, size_t n, bool add_generation_prompt,
                         const char *bos, const char *eos, tw_buf *out, tw_error *err)
{
    tw_chat_opts o = tw_chat_default_opts();
    o.add_generation_prompt = add_generation_prompt;
    o.bos_token = bos;
    o.eos_token = eos;
    return render(t, msgs, n, &o, out, err);
}

/* Stands in for the last assistant message to find where its content lands: plain ASCII
 * letters, so no trim / strip / split of the templates changes it. */
static const char SENTINEL[] = "TWzq8Sentinel4Kx";

static const char *find_unique(const char *h, size_t hn, const char *nd)
{
    size_t nn = strlen(nd);
    const char *p = memmem(h, hn, nd, nn);
    if (!p || memmem(p + 1, hn - (size_t)(p + 1 - h), nd, nn)) return NULL;
    return p;
}

tw_status tw_chat_render_span(const tw_chat_template *t, const tw_chat_msg *msgs, size_t n, const tw_chat_opts *o,
                              tw_buf *out, tw_chat_span *span, tw_error *err)
{
    if (n == 0 || !msgs || !msgs[n - 1].role || strcmp(msgs[n - 1].role, "assistant") != 0)
        return tw_error_set(err, TW_ERR_INVALID, "chat span: the last message must be an assistant message");
    tw_chat_opts oo = o ? *o : tw_chat_default_opts();
    oo.add_generation_prompt = false;
    size_t base = out->len;
    tw_status st = render(t, msgs, n, &oo, out, err);
    if (st) return st;
    const char *R = out->data + base;
    size_t rn = out->len - base;

    tw_buf pb = {0}, sbuf = {0};
    tw_chat_msg *sm = malloc(n * sizeof *sm);
    if (!sm) { st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); goto done; }
    memcpy(sm, msgs, n * sizeof *sm);
    sm[n - 1].content = SENTINEL;
    if ((st = render(t, sm, n, &oo, &sbuf, err))) goto done;
    const char *S = sbuf.data;
    const char *hit = find_unique(S, sbuf.len, SENTINEL);
    if (!hit) {
        st = tw_error_set(err, TW_ERR_UNSUPPORTED, "chat span: the template does not write the last assistant message verbatim");
        goto done;
    }
    size_t pre = (size_t)(hit - S), suf = sbuf.len - pre - strlen(SENTINEL);
    if (pre + suf > rn || memcmp(R + rn - suf, hit + strlen(SENTINEL), suf) != 0) {
        st = tw_error_set(err, TW_ERR_UNSUPPORTED, "chat span: the text after the last assistant message depends on it");
        goto done;
    }
    size_t content_end = rn - suf;

    /* the prompt: msgs[0..n-1) with the generation prompt, when the rendering starts with it */
    oo.add_generation_prompt = true;
    size_t prompt_end = SIZE_MAX;
    if (n > 1) {
        tw_error perr;
        if (render(t, msgs, n - 1, &oo, &pb, &perr) == TW_OK && pb.len <= content_end && memcmp(pb.data, R, pb.len) == 0)
            prompt_end = pb.len;
    }
    size_t content_begin;
    if (memcmp(R, S, pre) == 0 && pre <= content_end) content_begin = pre;
    else if (prompt_end != SIZE_MAX) content_begin = prompt_end;  /* e.g. Qwen3 moved a <think> block in front */
    else {
        st = tw_error_set(err, TW_ERR_UNSUPPORTED, "chat span: the text before the last assistant message depends on it");
        goto done;
    }
    if (prompt_end == SIZE_MAX || prompt_end > content_begin) prompt_end = content_begin;

    /* the end-of-turn marker right after the content */
    size_t turn_end = content_end, k = content_end;
    while (k < rn && (R[k] == ' ' || R[k] == '\t' || R[k] == '\n')) k++;
    const char *const *stops = t->stops;
    for (size_t i = 0; i <= STOPS_MAX; i++) {
        const char *s = i < STOPS_MAX ? stops[i] : oo.eos_token;
        if (!s || !*s) continue;
        size_t sl = strlen(s);
        if (k + sl <= rn && memcmp(R + k, s, sl) == 0) { turn_end = k + sl; break; }
        if (i < STOPS_MAX && !stops[i]) i = STOPS_MAX - 1;  /* jump to the eos check */
    }
    span->prompt_end = base + prompt_end;
    span->content_begin = base + content_begin;
    span->content_end = base + content_end;
    span->turn_end = base + turn_end;
    st = TW_OK;
done:
    if (st) {
        out->len = base;
        if (out->data) out->data[base] = '\0';
    }
    free(sm);
    tw_buf_free(&pb);
    tw_buf_free(&sbuf);
    return st;
}

/* =====================================================================================
 * user template files
 * ===================================================================================== */

/* Stop strings of a template of no known family: how it closes an assistant turn, i.e. the
 * text right after the assistant's content (up to the first '>' when it starts with '<',
 * else up to whitespace), unless that is just the EOS token. */
static tw_status derive_stops(tw_chat_template *t, tw_error *err)
{
    static const char EOS[] = "\x01\x02EOS\x02\x01";
    tw_chat_msg m[2] = {{"user", "Hi"}, {"assistant", SENTINEL}};
    tw_chat_opts o = tw_chat_default_opts();
    o.bos_token = "";
    o.eos_token = EOS;
    tw_buf b = {0};
    tw_error perr;
    if (render(t, m, 2, &o, &b, &perr) != TW_OK) {
        tw_buf_free(&b);
        return TW_OK;  /* e.g. the template insists on a system message: no derived stop */
    }
    const char *hit = find_unique(b.data, b.len, SENTINEL);
    if (hit) {
        const char *p = hit + strlen(SENTINEL), *end = b.data + b.len;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
        const char *q = p;
        if (q < end && *q == '<') {
            const char *gt = memchr(q, '>', (size_t)(end - q));
            q = gt ? gt + 1 : q;
        } else
            while (q < end && *q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') q++;
        if (q > p && !memmem(p, (size_t)(q - p), EOS, strlen(EOS)) && !memchr(p, '\x01', (size_t)(q - p))) {
            t->stop_own[0] = strndup(p, (size_t)(q - p));
            if (!t->stop_own[0]) {
                tw_buf_free(&b);
                return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            }
            t->stops[0] = t->stop_own[0];
            t->stops[1] = NULL;
        }
    }
    tw_buf_free(&b);
    return TW_OK;
}

tw_status tw_chat_template_load(tw_chat_template **out, const char *path, tw_error *err)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    tw_status st = tw_file_read(path, &text, &len, err);
    if (st) return st;
    if (memchr(text, '\0', len)) {
        free(text);
        return tw_error_set(err, TW_ERR_PARSE, "%s: not a text file (holds a NUL byte)", path);
    }
    size_t bad;
    if (!tw_utf8_valid(text, len, &bad)) {
        free(text);
        return tw_error_set(err, TW_ERR_PARSE, "%s: offset %zu: invalid UTF-8", path, bad);
    }
    /* tokenizer_config.json: {"chat_template": "..." | [{"name": ..., "template": ...}]} */
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) i++;
    char *src = text;
    json_t *root = NULL;
    if (i + 1 < len && text[i] == '{' && text[i + 1 + strspn(text + i + 1, " \t\r\n")] == '"') {
        json_error_t je;
        root = json_loadb(text, len, JSON_DECODE_INT_AS_REAL, &je);  /* model_max_length can be 1e30 */
        if (!root) {
            st = tw_error_set(err, TW_ERR_PARSE, "%s: line %d: %s", path, je.line, je.text);
            free(text);
            return st;
        }
        json_t *ct = json_object_get(root, "chat_template");
        const char *s = NULL;
        if (json_is_string(ct)) s = json_string_value(ct);
        else if (json_is_array(ct)) {
            for (size_t k = 0; k < json_array_size(ct); k++) {
                json_t *e = json_array_get(ct, k);
                if (json_is_string(json_object_get(e, "name")) &&
                    strcmp(json_string_value(json_object_get(e, "name")), "default") == 0 &&
                    json_is_string(json_object_get(e, "template")))
                    s = json_string_value(json_object_get(e, "template"));
            }
        }
        if (!s) {
            json_decref(root);
            free(text);
            return tw_error_set(err, TW_ERR_INVALID,
                                "%s: JSON without a \"chat_template\" string (or a list holding one named \"default\")", path);
        }
        src = (char *)s;
    }
    tw_chat_family f = detect(src);
    if (f == TW_CHAT_UNKNOWN) f = TW_CHAT_CUSTOM;
    tw_chat_template *t = NULL;
    st = template_alloc(&t, src, f, err);
    json_decref(root);
    free(text);
    if (st) return st;
    if ((st = compile(t, path, err)) || (f == TW_CHAT_CUSTOM && (st = derive_stops(t, err)))) {
        tw_chat_template_free(t);
        return st;
    }
    *out = t;
    return TW_OK;
}
