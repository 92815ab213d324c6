#!/usr/bin/env python3
"""Generate the tokenizer conformance fixtures (tests/data/tokenizer/*.jsonl) and the
NFC tables of the C tokenizer (src/model/tok_nfc_data.h).

Python is a fixture generator only: the C tests read the committed files and never run
Python. The oracle is Hugging Face `tokenizers` (PyPI, the Rust implementation):

    pip install tokenizers
    python3 tests/ref/gen_tokenizer_fixtures.py            # fixtures
    python3 tests/ref/gen_tokenizer_fixtures.py --nfc      # src/model/tok_nfc_data.h too

Outputs
  tests/data/tokenizer/corpus.jsonl   one string per line: {"text": ...} or, for inputs that
                                      are not valid UTF-8, {"hex": "..."} (raw bytes).
  tests/data/tokenizer/<name>.jsonl   line 1: header {"tokenizer", "path", "hf_tokenizers",
                                      "n": corpus size}; then one line per corpus string i:
      {"i": i, "ids": encode(text, add_special_tokens=False)}
      + "ids_special": encode(text, add_special_tokens=True)  (first 12 strings, and any
                                      string where it is not prefix+ids+suffix; prefix and
                                      suffix are in the header)
      + "ids_literal": ids with tokenizer.encode_special_tokens = True (special tokens in the
                                      text are tokenized as text), only where it differs
      + "decoded": decode(ids, skip_special_tokens=False), only where it differs from text
                                      (always for "hex" inputs)
      + "decoded_skip": decode(ids, skip_special_tokens=True), only where it differs from
                                      "decoded"
    Invalid UTF-8 inputs are encoded as HF would see them after Python's
    bytes.decode("utf-8", errors="replace") (the C tokenizer's documented default policy).

The corpus: hand-written tricky strings (scripts, emoji, combining marks, digits,
whitespace, code, punctuation, special-token strings), seeded random mixes, a few very
long words, and real lines read from ../shared/data (banking77, sst2, snips, e2e).
"""
import json
import os
import random
import sys
import unicodedata

import tokenizers
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SHARED = os.environ.get("TW_SHARED", os.path.normpath(os.path.join(ROOT, "..", "shared")))
OUT = os.path.join(ROOT, "tests", "data", "tokenizer")

TOKENIZERS = [
    ("smollm2", "models/smollm2-135m/tokenizer.json"),
    ("llama3", "models/tokenizers/llama3/tokenizer.json"),
    ("qwen3", "models/tokenizers/qwen3/tokenizer.json"),
    ("llama2", "models/tokenizers/llama2/tokenizer.json"),
]

# ---------------------------------------------------------------------------------
# corpus
# ---------------------------------------------------------------------------------
HAND = [
    # plain / whitespace
    "Hello world", "Hello, world!", "hello world", "HELLO WORLD", " leading space",
    "trailing space ", "trailing spaces   ", "  two leading", "multiple   spaces   inside",
    "\ttab\tseparated\t", "line1\nline2", "line1\r\nline2\r\n", "\n\n\n", " \n \n ", "\r", "\r\n",
    "\n", "\t", " ", "  ", "   ", "", "a\u00a0b", "x\u3000y", "a\u180eb", "a\u0085b", "a\u2028b\u2029c",
    "zero\u200bwidth", "\x0b\x0c vt ff", "\x1c\x1d\x1e\x1f sep", "nul\x00byte", "a \t\n b",
    "end with newline\n", "  \n\n  indented\n", "\t\t\tx", "x\t\t\t", " \r\n \r\n",
    "word \n\nword", "a  \n  b", "tabs\t \t mixed",
    # contractions and apostrophes
    "I'm", "you're", "they've", "he'll", "she'd", "it's", "DON'T", "I'M", "It'S", "'s'", "''",
    "'\u017f", "'ll've", "rock'n'roll", "it\u2019s", "'tis", "y'all'd've", "O'Neil's", "'S 'T 'RE",
    # digits
    "3.14159", "1,000,000", "2024-01-15", "0x1F", "v1.2.3", "\u0661\u0662\u0663", "\u00b2\u00b3",
    "\u00bd", "\u216b", "\U0001d7d8\U0001d7d9", "\u2460\u2461", "12ab34", "a1b2c3", "1st 2nd 3rd",
    "$100.00", "50%", "+1 (555) 123-4567", "1e-10", "007", "\uff11\uff12\uff13",
    # scripts
    "\u4f60\u597d\uff0c\u4e16\u754c", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "\u4e2d\u6587\U0001F600", "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8\uc785\ub2c8\ub2e4",
    "\uc548\ub155\ud558\uc138\uc694", "\u1100\u1161\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0645\u064e\u0631\u0652\u062d\u064e\u0628\u064b\u0627", "\u05e9\u05c1\u05b8\u05dc\u05d5\u05b9\u05dd",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e", "\u0939\u093f\u0928\u094d\u0926\u0940",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a", "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac", "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442",
    "\u00dcn\u00efc\u00f6d\u00e9", "\u01c5", "\u00df\u1e9e", "\u0130stanbul", "\ufb00", "\ufb01nance",
    "na\u00efve caf\u00e9 r\u00e9sum\u00e9", "Hello\u4e16\u754c123abc", "\u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0",
    "\u1265\u12a2\u1275\u12ee\u1335\u12eb", "\u0d2e\u0d32\u0d2f\u0d3e\u0d33\u0d02", "\u0bb5\u0ba3\u0b95\u0bcd\u0b95\u0bae\u0bcd",
    "\u1781\u17d2\u1798\u17c2\u179a", "\u0f56\u0f7c\u0f51\u0f0b\u0f61\u0f72\u0f42", "Ti\u1ebfng Vi\u1ec7t c\u00f3 d\u1ea5u",
    # combining marks / normalization
    "e\u0301", "cafe\u0301", "a\u0308\u0301", "\u0301", " \u0301", "\u1e9b\u0323", "\u212b", "\u2126",
    "\uf900", "A\u030a", "\u00c5", "o\u0328\u0304", "Z\u0324\u0354\u0367\u0311\u0313a\u0308\u0356\u032d\u0308\u0307l\u036e\u0312\u036b",
    "q\u0307\u0323", "\u0958", "\u2adc", "\u0344", "\u0e33", "\u0f73", "x\u0345\u0301",
    "\u3099\u304b\u3099", "\u304b\u3099", "\u1026\u102e", "\U0001d15e", "\u00e9\u0301\u0301",
    # emoji
    "\U0001F600", "\U0001F44D\U0001F3FD", "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466",
    "\U0001F3F3\ufe0f\u200d\U0001F308", "\U0001F1FA\U0001F1F8\U0001F1EB\U0001F1F7", "\u2764\ufe0f",
    "1\ufe0f\u20e3", "\U0001F9D1\U0001F3FF\u200d\U0001F4BB", "I \u2764\ufe0f NY \U0001F5FD!",
    "\U0001F600\U0001F600\U0001F600 lol", "\U000e0067\U000e0062", "\U0010fffd", "\ue000 private",
    # code
    "def foo(x):\n    return x**2\n", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}",
    "<div class=\"x\">Hi</div>", "SELECT * FROM t WHERE id = 42;", "{\"key\": [1, 2, 3]}",
    "$ ls -la | grep foo > out.txt 2>&1", "https://example.com/path?q=1&r=2#frag",
    "C:\\Users\\name\\file.txt", "x+=1;y-=2", "    indented with 4 spaces", "\t\tdouble tab",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); }\n", "a->b = c::d;",
    "if x != None and y >= 3:\n        pass", "// comment\n/* block */", "```python\nprint('hi')\n```",
    "__init__ self.__dict__", "camelCaseIdentifier snake_case_id SCREAMING_CASE",
    # punctuation
    "!!!!!!!!", "?!?!?!", "......", "---", "=====", "***", "~~~", "...!!!???", "\u00abquotes\u00bb",
    "\u201csmart quotes\u201d", "\u2014em dash\u2014", "(parens) [brackets] {braces}", "@#$%^&*",
    "a,b;c:d", "Hi!!! How are you???", "wait... what?!", " ! ? .", "\u3002\u3001\uff01",
    "\u00bf\u00a1Hola!?",
    # special-token strings inside text
    "<|im_start|>user\nHi<|im_end|>\n", "<|endoftext|>", "<|begin_of_text|>Hello", "<|eot_id|>",
    "<s>Hello</s>", "<unk>", "text<think>reasoning</think>answer", "<|im_start|><|im_end|>",
    "<<|im_start|>>", "<|im_start", "<tool_call>{\"x\":1}</tool_call>", "<|reserved_special_token_5|>",
    " <|im_end|> ", "Hello <s> world </s>", "<|start_header_id|>system<|end_header_id|>\n\nYou are",
    "a<|endoftext|>b", "<|im_start|>assistant\n<think>\n\n</think>\n\nOK<|im_end|>", "</s></s>",
    "<repo_name>x<file_sep>y",
    # found by random comparison with HF: U+180E is not \s for Oniguruma (White_Space)
    "'m\u180e're'LL", "i\u4f91C\u180e  \u180e\u2177the", "\r\n\t\u180e0\u205f;the", "a \u180e b", "\u180e\u180e 's",
]

INVALID_HEX = [
    "ff", "c3", "e4b8", "e4b841", "eda080", "c0af", "f4908080", "618062", "f09f98",
    "68656c6c6f20ff20776f726c64", "e282ac80", "fefeff", "f8888080", "e0808061", "cefbce",
    "3c7c696d5f73746172747c3eff", "20e4b8ade4",
]


def random_mixes(rng, n):
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ",
        "0123456789",
        " \t\n\r",
        " ",
        ".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`",
        "\u4f60\u597d\u4e16\u754c\u65e5\u672c\u8a9e",
        "\uac00\ud55c\uad6d\u1100\u1161\u11a8",
        "\u0645\u0631\u062d\u0628\u064e\u0652",
        "\u0928\u092e\u0938\u094d\u0924\u0947",
        "\u0e2a\u0e27\u0e31\u0e14\u0e35",
        "\u0301\u0308\u0323\u030a",
        "\U0001F600\U0001F44D\U0001F3FD\u200d\u2764\ufe0f",
        "\u00e9\u00fc\u00df\u00f1\u00c5\u212b",
        "\u0661\u00b2\u00bd\u2460",
        "'s't're",
        "\u00a0\u3000\u2028\u0085",
        "\u180e\u200b\u200c\u200d\u202f\u205f\x1c\x85\u2029",
    ]
    out = []
    for _ in range(n):
        k = rng.randint(1, 60)
        s = []
        for _ in range(k):
            p = pools[rng.randrange(len(pools))]
            s.append(p[rng.randrange(len(p))])
        out.append("".join(s))
    return out


def generated(rng):
    out = []
    for k in range(1, 26):
        out.append("".join(str((i * 7 + k) % 10) for i in range(k)))
    for k in (1, 2, 3, 4, 5, 7, 9, 13):
        out.append("x" + "1" * k + " " + "9" * k + "y")
    for ws in (" ", "  ", "\t", "\n", "\r\n", " \n", "\n ", "\t \t", "   \n\n   "):
        out.append("a" + ws + "b")
        out.append(ws + "a")
        out.append("a" + ws)
    for p in "!?.-=*#/\\":
        for k in (2, 3, 5, 17):
            out.append(p * k)
    letters = "abcdefghijklmnopqrstuvwxyz"
    out.append("a" * 10000)
    out.append("".join(letters[rng.randrange(26)] for _ in range(10000)))
    out.append(" " * 1000)
    out.append("1234567890" * 100)
    out.append("\u4e2d" * 1000)
    out.append("\U0001F600" * 200)
    out.append("!" * 1000)
    out.append("ab\n" * 300)
    out.append("e\u0301" * 500)
    return out


def dataset_lines():
    out = []
    spec = [("banking77/test.jsonl", 12, "input"), ("sst2/test.jsonl", 10, "input"),
            ("snips_slots/test.jsonl", 8, "input"), ("snips_slots/test.jsonl", 4, "output"),
            ("e2e/test.jsonl", 8, "input"), ("e2e/test.jsonl", 8, "output")]
    for path, n, field in spec:
        full = os.path.join(SHARED, "data", path)
        with open(full, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        step = max(1, len(rows) // n)
        for i in range(n):
            out.append(rows[(i * step + 3) % len(rows)][field])
    # lines with non-ASCII characters, if any (sst2 has e.g. "crème brûlée")
    with open(os.path.join(SHARED, "data", "sst2", "test.jsonl"), encoding="utf-8") as f:
        extra = [json.loads(line)["input"] for line in f]
    out += [s for s in extra if any(ord(c) > 127 for c in s)][:4]
    return out


def build_corpus():
    rng = random.Random(20240521)
    corpus = [{"text": s} for s in HAND]
    corpus += [{"text": s} for s in generated(rng)]
    corpus += [{"text": s} for s in random_mixes(rng, 120)]
    corpus += [{"text": s} for s in dataset_lines()]
    corpus += [{"hex": h} for h in INVALID_HEX]
    return corpus


def text_of(entry):
    if "text" in entry:
        return entry["text"]
    return bytes.fromhex(entry["hex"]).decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------
def gen_fixtures():
    os.makedirs(OUT, exist_ok=True)
    corpus = build_corpus()
    with open(os.path.join(OUT, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for e in corpus:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    for name, rel in TOKENIZERS:
        tok = Tokenizer.from_file(os.path.join(SHARED, rel))
        lit = Tokenizer.from_file(os.path.join(SHARED, rel))
        lit.encode_special_tokens = True
        # what add_special_tokens=True adds around the text (the post-processor's template)
        probe = tok.encode("x", add_special_tokens=False).ids
        probe_sp = tok.encode("x", add_special_tokens=True).ids
        k = next(j for j in range(len(probe_sp)) if probe_sp[j:j + len(probe)] == probe)
        prefix, suffix = probe_sp[:k], probe_sp[k + len(probe):]
        path = os.path.join(OUT, name + ".jsonl")
        with open(path, "w", encoding="utf-8") as f:
            hdr = {"tokenizer": name, "path": rel, "hf_tokenizers": tokenizers.__version__,
                   "n": len(corpus), "prefix": prefix, "suffix": suffix}
            f.write(json.dumps(hdr) + "\n")
            for i, e in enumerate(corpus):
                text = text_of(e)
                ids = tok.encode(text, add_special_tokens=False).ids
                row = {"i": i, "ids": ids}
                sp = tok.encode(text, add_special_tokens=True).ids
                if i < 12 or sp != prefix + ids + suffix:
                    row["ids_special"] = sp
                li = lit.encode(text, add_special_tokens=False).ids
                if li != ids:
                    row["ids_literal"] = li
                dec = tok.decode(ids, skip_special_tokens=False)
                if dec != text or "hex" in e:
                    row["decoded"] = dec
                dsk = tok.decode(ids, skip_special_tokens=True)
                if dsk != dec:
                    row["decoded_skip"] = dsk
                f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        print(f"{path}: {len(corpus)} strings, {os.path.getsize(path)} bytes")


# ---------------------------------------------------------------------------------
# pipeline variants: SmolLM2's vocabulary and merges under other normalizers and
# pre-tokenizers (every Split behaviour, invert, Digits, ByteLevel add_prefix_space).
# The C test applies the same JSON edits to its own copy of SmolLM2's tokenizer.json.
# ---------------------------------------------------------------------------------
def bl(prefix=False, regex=False):
    return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True, "use_regex": regex}


def split(pattern, behavior, invert=False, regex=False):
    return {"type": "Split", "pattern": {"Regex" if regex else "String": pattern}, "behavior": behavior,
            "invert": invert}


VARIANTS = [
    ("merged_prev", None, {"type": "Sequence", "pretokenizers": [split(" ", "MergedWithPrevious"), bl()]}),
    ("merged_next", None, {"type": "Sequence", "pretokenizers": [split(" ", "MergedWithNext"), bl()]}),
    ("contiguous", None, {"type": "Sequence", "pretokenizers": [split("\\d", "Contiguous", regex=True), bl()]}),
    ("removed", None, {"type": "Sequence", "pretokenizers": [split(",", "Removed"), bl(regex=True)]}),
    ("invert", None, {"type": "Sequence", "pretokenizers": [split("[aeiou ]+", "Isolated", invert=True, regex=True), bl()]}),
    ("invert_removed", None, {"type": "Sequence", "pretokenizers": [split("\\s+", "Removed", invert=True, regex=True), bl()]}),
    ("digits_runs", None, {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": False}, bl(regex=True)]}),
    ("prefix_space", None, bl(prefix=True, regex=True)),
    ("prefix_space_seq", None, {"type": "Sequence", "pretokenizers": [split("-", "MergedWithNext"), bl(prefix=True)]}),
    ("normalizers", {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "x"},
                                                          {"type": "Replace", "pattern": {"String": "a"}, "content": "bb"},
                                                          {"type": "NFC"}]}, bl(regex=True)),
]

VARIANT_TEXTS = [
    "Hello world", "Hello, world, again!", "  two  spaces ", "a-b-c --x- y", "123abc4567 89", "x1y22z333",
    "caf\u00e9 e\u0301 na\u00efve", "tabs\tand\nnewlines\r\n", "aeiou and consonants", "<|im_start|>user x",
    "", " ", "banana, apple,, pear", "\u4e2d\u6587 \U0001F600 ok", "-leading-dash", "trailing-", "a,b,c",
    "It's 2024-01-15 at 10:30", "def f(x):\n    return x", "\u0661\u0662 \u00bd \u00b2",
]


def gen_variants():
    base = json.load(open(os.path.join(SHARED, "models/smollm2-135m/tokenizer.json"), encoding="utf-8"))
    out = []
    for name, norm, pre in VARIANTS:
        j = dict(base)
        j["normalizer"] = norm
        j["pre_tokenizer"] = pre
        tok = Tokenizer.from_str(json.dumps(j))
        cases = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in VARIANT_TEXTS]
        out.append({"name": name, "normalizer": norm, "pre_tokenizer": pre, "cases": cases})
    path = os.path.join(OUT, "variants.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"base": "models/smollm2-135m/tokenizer.json", "hf_tokenizers": tokenizers.__version__,
                   "variants": out}, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"{path}: {len(out)} variants x {len(VARIANT_TEXTS)} texts, {os.path.getsize(path)} bytes")


# ---------------------------------------------------------------------------------
# NFC tables (Unicode version of this Python's unicodedata)
# ---------------------------------------------------------------------------------
def gen_nfc():
    ccc = {}
    decomp = {}
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if 0xAC00 <= cp <= 0xD7A3:
            continue  # Hangul syllables: algorithmic
        c = chr(cp)
        k = unicodedata.combining(c)
        if k:
            ccc[cp] = k
        d = unicodedata.decomposition(c)
        if d and not d.startswith("<"):
            decomp[cp] = [int(x, 16) for x in d.split()]
    # full (recursive) canonical decomposition
    def full(cp):
        if cp not in decomp:
            return [cp]
        r = []
        for x in decomp[cp]:
            r += full(x)
        return r
    # primary composites: canonical decomposition of length 2, not excluded, first is a starter.
    comps = {}
    for cp, d in decomp.items():
        if len(d) != 2:
            continue
        if unicodedata.normalize("NFC", chr(cp)) != chr(cp):
            continue  # composition exclusion / singleton / non-starter decomposition
        comps[(d[0], d[1])] = cp
    # "may change under NFC" set (the quick-check idea of UAX #15): NFC_Quick_Check=No
    # (NFC changes the character alone), ccc != 0 (reordering), NFC_Quick_Check=Maybe (the
    # second character of a composition, plus Hangul V/T jamo, which compose
    # algorithmically with a preceding L or LV). Text without any of these is in NFC.
    maybe = {cp for cp in decomp if unicodedata.normalize("NFC", chr(cp)) != chr(cp)}
    maybe |= set(ccc) | {b for (_, b) in comps}
    maybe |= set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    # self-check against unicodedata on single characters and pairs
    for cp in list(decomp)[:50]:
        assert unicodedata.normalize("NFD", chr(cp)) == "".join(map(chr, full(cp)))

    def ranges(s):
        s = sorted(s)
        out = []
        for x in s:
            if out and out[-1][1] == x - 1:
                out[-1][1] = x
            else:
                out.append([x, x])
        return out

    ccc_ranges = []
    for cp in sorted(ccc):
        if ccc_ranges and ccc_ranges[-1][1] == cp - 1 and ccc_ranges[-1][2] == ccc[cp]:
            ccc_ranges[-1][1] = cp
        else:
            ccc_ranges.append([cp, cp, ccc[cp]])
    pool = []
    dec_rows = []
    for cp in sorted(decomp):
        f = full(cp)
        dec_rows.append((cp, len(pool), len(f)))
        pool += f
    comp_rows = sorted(((a << 21) | b, c) for (a, b), c in comps.items())

    lines = []
    w = lines.append
    w("/* tok_nfc_data.h — Unicode %s tables for NFC normalization (tok_nfc.c)." % unicodedata.unidata_version)
    w(" * GENERATED by tests/ref/gen_tokenizer_fixtures.py --nfc from Python's unicodedata;")
    w(" * do not edit. Hangul syllables are handled algorithmically and are not listed. */")
    w("#ifndef TW_TOK_NFC_DATA_H")
    w("#define TW_TOK_NFC_DATA_H")
    w("#include <stdint.h>")
    w('#define TW_NFC_UNICODE_VERSION "%s"' % unicodedata.unidata_version)

    def emit(name, ctype, rows, per=6):
        w("static const %s %s[] = {" % (ctype, name))
        for i in range(0, len(rows), per):
            w("    " + " ".join(rows[i:i + per]))
        w("};")

    mr = ranges(maybe)
    w("/* code points that may change under NFC (NFC_QC No or Maybe, or ccc != 0): inclusive")
    w(" * ranges, sorted. Text without any of them is already in NFC. */")
    emit("nfc_maybe", "uint32_t", ["0x%X, 0x%X," % (a, b) for a, b in mr], 4)
    w("#define NFC_MAYBE_N %d" % len(mr))
    w("/* canonical combining class != 0: {first, last, ccc}, sorted */")
    emit("nfc_ccc", "uint32_t", ["0x%X, 0x%X, %d," % (a, b, c) for a, b, c in ccc_ranges], 4)
    w("#define NFC_CCC_N %d" % len(ccc_ranges))
    w("/* full canonical decomposition: {code point, offset in nfc_pool, length}, sorted */")
    emit("nfc_dec", "uint32_t", ["0x%X, %d, %d," % r for r in dec_rows], 4)
    w("#define NFC_DEC_N %d" % len(dec_rows))
    emit("nfc_pool", "uint32_t", ["0x%X," % x for x in pool], 10)
    w("/* primary composites: {(first << 21) | second, composite}, sorted by key */")
    emit("nfc_comp", "uint64_t", ["0x%XULL, 0x%X," % r for r in comp_rows], 3)
    w("#define NFC_COMP_N %d" % len(comp_rows))
    w("#endif")
    dst = os.path.join(ROOT, "src", "model", "tok_nfc_data.h")
    with open(dst, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{dst}: {len(mr)} maybe ranges, {len(ccc_ranges)} ccc ranges, {len(dec_rows)} decompositions, "
          f"{len(comp_rows)} compositions")


if __name__ == "__main__":
    if "--nfc" in sys.argv:
        gen_nfc()
    gen_fixtures()
    gen_variants()
