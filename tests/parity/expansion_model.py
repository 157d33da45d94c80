"""Random-weight prompt-expansion models in Fooocus's folder layout, made deterministically.

`write_expansion_model(folder)` writes config.json, tokenizer.json, vocab.json, merges.txt,
tokenizer_config.json, special_tokens_map.json, positive.txt and model.safetensors: a byte-level BPE
tokenizer trained here on a corpus of made-up words, a seeded 2-layer GPT-2 (float32) and a word list of
the same made-up words. Fooocus (transformers' AutoTokenizer / AutoModelForCausalLM) and our extension
both load it. Needs torch, tokenizers, transformers and safetensors; nothing else of the repository, so
it runs in a Fooocus venv as well.

`write_model_with_given_files(folder, small_files)` instead takes the seven small files from a folder
given at run time (Fooocus's own ones, which the extension pins by sha256 and which are never stored in
this repository: their word list is CC BY-NC) and adds seeded random GPT-2 weights of the shape their
config.json names (`write_seeded_weights`). The weights are drawn with numpy's PCG64 generator, not
torch's, so the Fooocus venv and the test venv write the same bytes; the callers compare the file's
sha256 with the one the reference recorded anyway.
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


SMALL_FILES = FILES[:-1]  # the seven files besides the weights
WEIGHTS_SEED = 20261130
WEIGHTS_STD = 0.02  # GPT-2's own initializer range: logits spread ~0.5 over the allowed words


def gpt2_parameter_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every stored parameter of a GPT2LMHeadModel for `config` (config.json's fields), in
    a fixed order. The LM head is tied to the token embedding, so it is not stored (the model ties it on
    load); the attention-mask buffers are rebuilt by the model."""
    width, vocab, positions = int(config["n_embd"]), int(config["vocab_size"]), int(config["n_positions"])
    inner = int(config.get("n_inner") or 4 * width)
    shapes: dict[str, tuple[int, ...]] = {
        "transformer.wte.weight": (vocab, width),
        "transformer.wpe.weight": (positions, width),
    }
    for layer in range(int(config["n_layer"])):
        prefix = f"transformer.h.{layer}."
        shapes.update({
            prefix + "ln_1.weight": (width,), prefix + "ln_1.bias": (width,),
            prefix + "attn.c_attn.weight": (width, 3 * width), prefix + "attn.c_attn.bias": (3 * width,),
            prefix + "attn.c_proj.weight": (width, width), prefix + "attn.c_proj.bias": (width,),
            prefix + "ln_2.weight": (width,), prefix + "ln_2.bias": (width,),
            prefix + "mlp.c_fc.weight": (width, inner), prefix + "mlp.c_fc.bias": (inner,),
            prefix + "mlp.c_proj.weight": (inner, width), prefix + "mlp.c_proj.bias": (width,),
        })
    shapes.update({"transformer.ln_f.weight": (width,), "transformer.ln_f.bias": (width,)})
    return shapes


def seeded_tensors(config: dict, seed: int = WEIGHTS_SEED) -> dict[str, object]:
    """float32 numpy arrays for `gpt2_parameter_shapes(config)`, drawn in that order from one PCG64
    generator: normal(0, WEIGHTS_STD), layer-norm scales around 1."""
    import numpy as np

    generator = np.random.Generator(np.random.PCG64(seed))
    tensors = {}
    for name, shape in gpt2_parameter_shapes(config).items():
        values = generator.standard_normal(shape, dtype=np.float32) * np.float32(WEIGHTS_STD)
        if ".ln_" in name and name.endswith(".weight"):
            values += np.float32(1.0)
        tensors[name] = values
    return tensors


def write_seeded_weights(folder: str | Path, seed: int = WEIGHTS_SEED) -> str:
    """Write model.safetensors for the folder's config.json; returns its sha256."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    target = folder / "model.safetensors"
    save_file(seeded_tensors(config, seed), str(target), metadata={"format": "pt"})
    return hashlib.sha256(target.read_bytes()).hexdigest()


def copy_small_files(source: str | Path, folder: str | Path) -> dict[str, str]:
    """Copy the seven small files from `source` into `folder`; returns {name: sha256}. A missing one is an
    error naming it (and `source`)."""
    import shutil

    source, folder = Path(source), Path(folder)
    missing = [name for name in SMALL_FILES if not (source / name).is_file()]
    if missing:
        msg = f"{source} lacks the expansion model's small files {', '.join(missing)}"
        raise FileNotFoundError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    for name in SMALL_FILES:
        shutil.copyfile(source / name, folder / name)
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in SMALL_FILES}


def write_model_with_given_files(folder: str | Path, small_files: str | Path,
                                 seed: int = WEIGHTS_SEED) -> dict[str, str]:
    """The folder = the small files of `small_files` + seeded weights; returns {file name: sha256}."""
    hashes = copy_small_files(small_files, folder)
    hashes["model.safetensors"] = write_seeded_weights(folder, seed)
    return hashes


def expansion_digest(text: str) -> str:
    """sha256 of an expansion text (UTF-8): what the references store instead of a text made of a
    word list that may not be stored here."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


if __name__ == "__main__":
    import sys

    print(json.dumps(write_expansion_model(sys.argv[1]), indent=1))
