/* jinja.h — a small interpreter for the subset of Jinja2 that Hugging Face chat templates
 * use: compile a template's source into a program once, then render the program with the
 * variables transformers' apply_chat_template passes. Internal to src/model: chat.c is its
 * one user, and model/chat.h the API that callers see.
 *
 * Configured as transformers configures jinja2 (transformers utils/chat_template_utils.py):
 * ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
 * extensions=[loopcontrols, generation tag]); filter tojson = json.dumps(ensure_ascii=False,
 * ...) without key sorting; globals raise_exception, strftime_now, namespace, dict;
 * render(messages, tools=None, documents=None, add_generation_prompt, bos_token, eos_token,
 * extra kwargs).
 *
 * Jinja semantics followed (jinja2 3.1 lexer.py / parser.py / runtime.py), and checked
 * byte for byte by tests/test_chat.c against jinja2's own output:
 *  - lexing: newlines normalized to \n, one trailing newline dropped; {%- -%} {{- -}} {#- -#}
 *    strip whitespace; trim_blocks drops the \n after %} and #}; lstrip_blocks drops the
 *    spaces/tabs before {% and {# on their line; {%+ keeps them; {% raw %};
 *  - string literals are unescaped like Python's unicode-escape codec;
 *  - values behave like Python's: str()/repr() of None, True, floats (shortest repr),
 *    lists, dicts; truthiness; == between numbers of any kind; `and`/`or` return operands;
 *  - an undefined variable prints as "", is falsy, iterates as empty, has length 0, and is
 *    an error in arithmetic or attribute access (jinja2's default Undefined);
 *  - `set` inside a for loop is local to the iteration; namespace() attributes are not.
 * Supported statements: for (with unpacking, `if` filter, else, loop.*), if/elif/else, set
 * (incl. namespace attributes and block set), break, continue, raw, generation. Not
 * supported (parse error, so a model template falls back to the built-in one): macro, call,
 * filter blocks, include/import/extends, recursive loops, and filters, tests, functions or
 * methods not listed in the tables of jinja_value.c.
 *
 * The code: jinja_internal.h (values, syntax tree, the shared context), jinja_value.c (arena,
 * error unwinding, Python value semantics: str / repr / tojson / comparisons),
 * jinja_parse.c (lexer and parser: source → syntax tree), jinja_eval.c (evaluator:
 * syntax tree + variables → text, with the built-in functions, methods, filters and tests).
 *
 * Memory: a program's tokens and syntax tree live in its own arena; each render uses a
 * fresh arena freed when it returns. Errors unwind with longjmp to the entry point (only
 * arena memory is live in between, so nothing leaks).
 *
 * Deliberately not here: chat families, built-in templates, stop strings and spans
 * (chat.c); autoescaping (chat templates run with it off); Python's Unicode case mapping
 * (upper/lower/title/capitalize map ASCII letters only); tools / multimodal content
 * (messages are plain strings); column numbers in messages (errors name the line). */
#ifndef TW_MODEL_JINJA_H
#define TW_MODEL_JINJA_H

#include "base/base.h"
#include "model/chat.h"   /* tw_chat_msg: the items of the `messages` variable */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A compiled template. Immutable once made: renders may share it across threads. */
typedef struct tw_jinja tw_jinja;

/* Lex and parse src (NUL-terminated, valid UTF-8; not referenced after the call). Errors
 * are "<label>: line N: ..." with TW_ERR_PARSE (malformed), TW_ERR_UNSUPPORTED (Jinja
 * beyond the subset) or TW_ERR_NOMEM. *out: caller frees with tw_jinja_free. */
tw_status tw_jinja_compile(tw_jinja **out, const char *src, const char *label, tw_error *err);

void tw_jinja_free(tw_jinja *p);

/* The template's variables (transformers' render kwargs). Strings are borrowed for the call
 * and must be valid UTF-8 (the caller checks). */
typedef struct tw_jinja_vars {
    const tw_chat_msg *messages;   /* `messages`: a list of {"role", "content"} dicts */
    size_t n_messages;
    bool add_generation_prompt;
    const char *bos_token;         /* NULL: None */
    const char *eos_token;         /* NULL: None */
    const char *date_string;       /* NULL: undefined */
    int enable_thinking;           /* -1: undefined; else False (0) / True */
    int64_t now;                   /* Unix time behind strftime_now(); 0: strftime_now is
                                      undefined. `tools` and `documents` are None. */
} tw_jinja_vars;

/* Render p with v and APPEND the text to out (out unchanged on error). Messages are
 * prefixed with label. Errors: TW_ERR_INVALID for raise_exception ("the template rejects
 * this conversation: ..."), TW_ERR_RUNTIME for a type error or a limit ("line N: ..."),
 * TW_ERR_UNSUPPORTED for what the subset leaves out at run time (64-bit overflow, ...),
 * TW_ERR_NOMEM. */
tw_status tw_jinja_render(const tw_jinja *p, const char *label, const tw_jinja_vars *v, tw_buf *out,
                          tw_error *err);

#endif /* TW_MODEL_JINJA_H */
