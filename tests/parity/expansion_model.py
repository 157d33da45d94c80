"""A random-weight prompt-expansion model in Fooocus's folder layout, made deterministically.

`write_expansion_model(folder)` writes config.json, tokenizer.json, vocab.json, merges.txt,
tokenizer_config.json, special_tokens_map.json, positive.txt and model.safetensors: a byte-level BPE
tokenizer trained here on a corpus of made-up words, a seeded 2-layer GPT-2 (float32) and a word list of
the same made-up words. Fooocus (transformers' AutoTokenizer / AutoModelForCausalLM) and our extension
both load it. Needs torch, tokenizers, transformers and safetensors; nothing else of the repository, so
it runs in a Fooocus venv as well.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

SYLLABLES = ("pra", "lum", "tez", "vor", "kin", "dal", "mup", "sor", "fex", "quo", "bim", "zal")
COMMON = ("a", "small", "robot", "gardener", "photo", "of", "the", "with", "and", "in", "cat", "garden")
SEED = 20261129
FILES = ("config.json", "tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
         "special_tokens_map.json", "positive.txt", "model.safetensors")


def made_up_words(count: int = 120) -> list[str]:
    return ["".join(pair) for pair in itertools.islice(itertools.product(SYLLABLES, repeat=2), count)]


def corpus(words: list[str]) -> list[str]:
    pool = [*words, *COMMON]
    lines = []
    for shift in range(10):
        rotated = pool[shift * 5:] + pool[:shift * 5]
        lines += [" ".join(rotated[i:i + 10]) + ", a small robot gardener." for i in range(0, len(rotated), 10)]
    return lines


def write_expansion_model(folder: str | Path) -> dict[str, str]:
    """Write the folder; returns {file name: sha256}."""
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    words = made_up_words()
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus(words), trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    tokenizer.model.save(str(folder))
    vocab = tokenizer.get_vocab()
    eos = vocab["<|endoftext|>"]
    config = GPT2Config(vocab_size=len(vocab), n_positions=256, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=eos, eos_token_id=eos)
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        model = GPT2LMHeadModel(config)
        with torch.no_grad():
            model.transformer.wte.weight.normal_(0.0, 0.5)
    config.save_pretrained(str(folder))
    special = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")
    tokenizer_config = {"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False, "model_max_length": 256}
    (folder / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, **special}), encoding="utf-8")
    (folder / "positive.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    state = {k: v.contiguous() for k, v in model.state_dict().items()
             if not k.endswith((".attn.bias", ".attn.masked_bias")) and k != "lm_head.weight"}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES}


if __name__ == "__main__":
    import sys

    print(json.dumps(write_expansion_model(sys.argv[1]), indent=1))
