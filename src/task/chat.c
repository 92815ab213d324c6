/* chat.c — chat JSONL rows, the shape fine-tuning APIs take:
 *   {"messages": [{"role": "system", "content": "..."},
 *                 {"role": "user", "content": "..."},
 *                 {"role": "assistant", "content": "..."}]}
 * Reading: system message(s) → ex->system (joined by a blank line); the final assistant
 * message → ex->output (none when the conversation ends on a user turn); the turns before
 * it → ex->input: the user's text for a single turn, or a "User: ...\n\nAssistant: ..."
 * transcript for multi-turn rows, which also keep the turns as extra["messages"].
 * Content may be a string or a list of {"type": "text", "text": ...} parts (joined).
 * Writing: system (ex->system or the writer's default), the turns (extra["messages"] or
 * the input as one user turn), then the output as the assistant turn.
 * Deliberately not here: tool / function calls, images, per-message weights (ignored),
 * chat templates for a model (src/model/chat.c). */
#include "task/rows.h"

#include <string.h>

typedef enum { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT } role_t;

/* Text of messages[i].content into b (cleared first). */
static tw_status content_text(const json_t *content, size_t i, tw_buf *b, const tw_row_ctx *c, tw_error *err)
{
    tw_buf_clear(b);
    if (json_is_string(content)) {
        if (tw_buf_append(b, json_string_value(content), json_string_length(content))) goto oom;
        return TW_OK;
    }
    if (!json_is_array(content))
        return tw_error_set(err, TW_ERR_INVALID,
                            "%s:%zu: messages[%zu].content must be a string or a list of text parts, got %s",
                            c->path, c->line, i, content ? tw_json_kind(content) : "nothing");
    for (size_t k = 0; k < json_array_size(content); k++) {
        const json_t *part = json_array_get(content, k);
        const char *type = json_string_value(json_object_get(part, "type"));
        const json_t *text = json_object_get(part, "text");
        if (!json_is_object(part) || !type || strcmp(type, "text") != 0 || !json_is_string(text))
            return tw_error_set(err, TW_ERR_INVALID,
                                "%s:%zu: messages[%zu].content[%zu]: only {\"type\": \"text\", \"text\": ...} "
                                "parts are supported%s%s%s",
                                c->path, c->line, i, k, type ? " (got type '" : "", type ? type : "",
                                type ? "')" : "");
        if (tw_buf_append(b, json_string_value(text), json_string_length(text))) goto oom;
    }
    return TW_OK;
oom:
    return tw_error_set(err, TW_ERR_NOMEM, "%s:%zu: out of memory", c->path, c->line);
}

static char *buf_dup(const tw_buf *b, tw_error *err) { return tw_strndup(b->data ? b->data : "", b->len, err); }

tw_status tw_chat_row(tw_example *ex, json_t *root, const tw_row_ctx *c, tw_error *err)
{
    tw_status st = TW_OK;
    json_t *msgs = NULL, *turns = NULL;
    role_t *roles = NULL;
    tw_buf text = {0}, sys = {0}, render = {0};
    if ((st = tw_row_take_id(ex, root, c, err))) goto done;
    msgs = tw_json_take(root, "messages");
    if (!msgs) {
        st = tw_error_set(err, TW_ERR_INVALID,
                          "%s:%zu: missing 'messages' list (chat rows look like {\"messages\": "
                          "[{\"role\": \"user\", \"content\": \"...\"}, ...]})",
                          c->path, c->line);
        goto done;
    }
    if (!json_is_array(msgs)) {
        st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: 'messages' must be a list, got %s", c->path, c->line,
                          tw_json_kind(msgs));
        goto done;
    }
    size_t n = json_array_size(msgs);
    if (n == 0) {
        st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: 'messages' is empty", c->path, c->line);
        goto done;
    }
    if (!(roles = tw_calloc(n, sizeof *roles, err))) { st = TW_ERR_NOMEM; goto done; }
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(msgs, i);
        if (!json_is_object(m)) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: messages[%zu] must be an object, got %s", c->path,
                              c->line, i, tw_json_kind(m));
            goto done;
        }
        const json_t *role = json_object_get(m, "role");
        if (!json_is_string(role)) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: messages[%zu].role must be a string, got %s", c->path,
                              c->line, i, role ? tw_json_kind(role) : "nothing");
            goto done;
        }
        const char *r = json_string_value(role);
        if (strcmp(r, "system") == 0) roles[i] = ROLE_SYSTEM;
        else if (strcmp(r, "user") == 0) roles[i] = ROLE_USER;
        else if (strcmp(r, "assistant") == 0) roles[i] = ROLE_ASSISTANT;
        else {
            st = tw_error_set(err, TW_ERR_INVALID,
                              "%s:%zu: messages[%zu]: unsupported role '%s' (expected system, user or assistant)",
                              c->path, c->line, i, r);
            goto done;
        }
        if ((st = content_text(json_object_get(m, "content"), i, &text, c, err))) goto done;
    }
    /* the answer: a final assistant turn */
    size_t end = n;
    if (roles[n - 1] == ROLE_ASSISTANT) {
        end = n - 1;
        if ((st = content_text(json_object_get(json_array_get(msgs, n - 1), "content"), n - 1, &text, c, err)))
            goto done;
        if (!(ex->output = buf_dup(&text, err))) { st = TW_ERR_NOMEM; goto done; }
    } else if (c->require_output) {
        st = tw_error_set(err, TW_ERR_INVALID,
                          "%s:%zu: missing output: the conversation does not end with an assistant message",
                          c->path, c->line);
        goto done;
    }
    size_t n_turns = 0, n_user = 0, last_turn = 0;
    for (size_t i = 0; i < end; i++) {
        if (roles[i] == ROLE_SYSTEM) {
            if ((st = content_text(json_object_get(json_array_get(msgs, i), "content"), i, &text, c, err))) goto done;
            if ((sys.len && tw_buf_puts(&sys, "\n\n")) || tw_buf_append(&sys, text.data ? text.data : "", text.len)) {
                st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
                goto done;
            }
            continue;
        }
        n_turns++;
        n_user += roles[i] == ROLE_USER;
        last_turn = i;
    }
    if (n_user == 0) {
        st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: no user message before the %s", c->path, c->line,
                          ex->output ? "assistant's answer" : "end of the conversation");
        goto done;
    }
    if (n_turns < end && !(ex->system = buf_dup(&sys, err))) { st = TW_ERR_NOMEM; goto done; }
    if (n_turns == 1) {
        if ((st = content_text(json_object_get(json_array_get(msgs, last_turn), "content"), last_turn, &text, c,
                               err)))
            goto done;
        if (!(ex->input = buf_dup(&text, err))) { st = TW_ERR_NOMEM; goto done; }
    } else {
        /* multi-turn: a plain transcript as the input, the turns themselves in extra */
        if (!(turns = json_array())) { st = TW_ERR_NOMEM; goto done; }
        for (size_t i = 0; i < end; i++) {
            if (roles[i] == ROLE_SYSTEM) continue;
            if ((st = content_text(json_object_get(json_array_get(msgs, i), "content"), i, &text, c, err))) goto done;
            const char *who = roles[i] == ROLE_USER ? "user" : "assistant";
            int bad = tw_buf_printf(&render, "%s%s: ", render.len ? "\n\n" : "",
                                    roles[i] == ROLE_USER ? "User" : "Assistant") != TW_OK;
            bad |= tw_buf_append(&render, text.data ? text.data : "", text.len) != TW_OK;
            json_t *turn = json_pack("{s:s, s:s%}", "role", who, "content", text.data ? text.data : "", text.len);
            bad |= !turn || json_array_append_new(turns, turn);
            if (bad) { st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); goto done; }
        }
        if (!(ex->input = buf_dup(&render, err))) { st = TW_ERR_NOMEM; goto done; }
        if (json_object_set_new(root, "messages", turns)) { turns = NULL; st = TW_ERR_NOMEM; goto done; }
        turns = NULL;
    }
    tw_row_keep_extra(ex, root);
    root = NULL;
done:
    json_decref(root);
    json_decref(msgs);
    json_decref(turns);
    free(roles);
    tw_buf_free(&text);
    tw_buf_free(&sys);
    tw_buf_free(&render);
    return st;
}

static int add_msg(json_t *a, const char *role, const char *content)
{
    return json_array_append_new(a, json_pack("{s:s, s:s}", "role", role, "content", content));
}

tw_status tw_chat_row_text(tw_buf *b, const tw_example *ex, const char *default_system, const char *path,
                           tw_error *err)
{
    json_t *o = json_object(), *msgs = json_array();
    int bad = !o || !msgs;
    const char *sys = ex->system ? ex->system : default_system;
    if (!bad && sys && *sys) bad |= add_msg(msgs, "system", sys);
    const json_t *turns = json_object_get(ex->extra, "messages");
    if (!bad && json_is_array(turns) && json_array_size(turns) > 0) {
        size_t i;
        json_t *t;
        json_array_foreach(turns, i, t) bad |= json_array_append(msgs, t);
    } else if (!bad) {
        bad |= add_msg(msgs, "user", ex->input ? ex->input : "");
    }
    if (!bad && ex->output) bad |= add_msg(msgs, "assistant", ex->output);
    if (!bad) {
        bad |= json_object_set_new(o, "messages", msgs);
        msgs = NULL;
    }
    char *s = bad ? NULL : json_dumps(o, JSON_COMPACT);
    json_decref(o);
    json_decref(msgs);
    if (!s) return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory serializing a chat row", path);
    tw_status st = tw_buf_puts(b, s);
    free(s);
    return st ? tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", path) : TW_OK;
}
