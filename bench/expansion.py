"""Bench: our Fooocus V2 expansion decode loop vs a `generate()`-based reference.

    python bench/expansion.py [--repeats 3] [--threads 1] [--batch 8] [--prompt "..."] [--seed 12345]

A random-weight GPT-2 with the real model's shape (12 layers, 768 wide, 12 heads, vocab 50257) and a
synthetic byte-level BPE tokenizer of 50257 tokens with 642 allowed words (like positive.txt) are built
in a temporary folder and loaded through the real loading path. For the same prompt and seed both sides
run interleaved; every run must give identical tokens. Per repeat: N seeds expanded in one batched call,
the same N one after another, N x `generate()`, and one exact-head call. Prints the medians side by side
and the ratios (targets: one expansion <= 0.5 x generate(), the batch of 8 <= 2 x one expansion).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VOCAB_SIZE = 50257
POSITIVE_COUNT = 642
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def byte_alphabet() -> list[str]:
    """GPT-2's byte -> printable character table, in GPT-2's id order (',' gets id 11)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in printable] + [chars[b] for b in range(256) if b not in printable]


def synthetic_vocab() -> tuple[dict[str, int], list[tuple[str, str]], list[str]]:
    """50256 BPE tokens (bytes, letter pairs, 'Ġ'+pairs, 4-letter words with and without 'Ġ') + EOS."""
    vocab: dict[str, int] = {}
    merges: list[tuple[str, str]] = []

    def add(token: str, merge: tuple[str, str] | None = None) -> None:
        if token not in vocab and len(vocab) < VOCAB_SIZE - 1:
            vocab[token] = len(vocab)
            if merge:
                merges.append(merge)

    for char in byte_alphabet():
        add(char)
    pairs = ["".join(p) for p in itertools.product(LETTERS, repeat=2)]
    for pair in pairs:
        add(pair, (pair[0], pair[1]))
    for letter in LETTERS:
        add("Ġ" + letter, ("Ġ", letter))
    for pair in pairs:
        add("Ġ" + pair, ("Ġ" + pair[0], pair[1]))
    words = []
    for first, second in itertools.product(pairs, repeat=2):
        if len(vocab) >= VOCAB_SIZE - 1:
            break
        add("Ġ" + first + second, ("Ġ" + first, second))
        add(first + second, (first, second))
        words.append(first + second)
    vocab["<|endoftext|>"] = VOCAB_SIZE - 1
    return vocab, merges, words


def write_model_folder(folder: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import GPT2Config, GPT2LMHeadModel

    from lib_fooocus.expansion.files import state_dict_for_safetensors

    vocab, merges, words = synthetic_vocab()
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.add_special_tokens(["<|endoftext|>"])
    tokenizer.save(str(folder / "tokenizer.json"))
    step = len(words) // POSITIVE_COUNT
    (folder / "positive.txt").write_text("\n".join(words[::step][:POSITIVE_COUNT]) + "\n", encoding="utf-8")

    config = GPT2Config(vocab_size=VOCAB_SIZE, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GPT2LMHeadModel(config)
    config.save_pretrained(str(folder))
    state = {k: v.half() for k, v in model.state_dict().items()}  # like fooocus_expansion.bin
    save_file(state_dict_for_safetensors(state), str(folder / "model.safetensors"), metadata={"format": "pt"})
    print(f"wrote a {sum(p.numel() for p in model.parameters()) / 1e6:.0f} M-parameter GPT-2 to {folder}")


def reference_tokens(engine, prompt_ids: list[int], seed: int) -> list[int]:
    """What Fooocus runs: set_seed + generate(do_sample, top_k=100) with its logits processor."""
    import torch
    import transformers
    from transformers.generation.logits_process import LogitsProcessorList

    base_bias = engine.base_bias.clone()
    comma = engine.comma_id

    def fooocus_processor(input_ids, scores):
        bias = base_bias.clone()
        bias[0, input_ids[0].long()] = -8192.0
        bias[0, comma] = 0.0
        return scores + bias

    input_ids = torch.tensor([prompt_ids])
    new_tokens = 75 * math.ceil(len(prompt_ids) / 75) - len(prompt_ids)
    transformers.set_seed(seed)
    with torch.inference_mode():
        output = engine.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=True,
            top_k=100,
            max_new_tokens=new_tokens,
            logits_processor=LogitsProcessorList([fooocus_processor]),
            pad_token_id=engine.model.config.eos_token_id,
        )
    return output[0, len(prompt_ids) :].tolist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt", default="a cat on a sofa")
    parser.add_argument("--seed", type=int, default=12345, help="row i of the batch uses seed + i")
    parser.add_argument("--batch", type=int, default=8, help="N: images of one batch (default 8)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for both sides (default 1: on a shared 2-core machine extra threads mostly wait)",
    )
    args = parser.parse_args(argv)

    import torch
    import transformers

    torch.set_num_threads(args.threads)

    from lib_fooocus.expansion.engine import FooocusExpansion, max_new_tokens_for, safe_str

    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads"
    )
    with tempfile.TemporaryDirectory(prefix="bench-expansion-") as scratch:
        folder = Path(scratch)
        write_model_folder(folder)
        fast = FooocusExpansion(folder)
        exact = FooocusExpansion(folder, exact_head=True)
        exact.model = fast.model  # one set of weights for all
        prompt_ids = fast.encode(safe_str(args.prompt) + ",")
        new_tokens = max_new_tokens_for(len(prompt_ids))
        seeds = [args.seed + i for i in range(args.batch)]
        print(
            f"prompt {args.prompt!r}: {len(prompt_ids)} tokens, {new_tokens} new tokens, "
            f"N = {args.batch} seeds {seeds[0]}..{seeds[-1]}"
        )

        references = [reference_tokens(fast, prompt_ids, seed) for seed in seeds]  # also the warm-up
        fast.sample_tokens_batch(prompt_ids, new_tokens, seeds[:2])
        # One call = one expansion of one seed; "batch" = one call for all N seeds.
        calls: dict[str, list[float]] = {"ours": [], "ours_exact_head": [], "generate": []}
        batches: dict[str, list[float]] = {"batched": [], "sequential": [], "generate": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            rows = fast.sample_tokens_batch(prompt_ids, new_tokens, seeds)
            batches["batched"].append(time.perf_counter() - start)
            if rows != references:
                print("MISMATCH: batched rows differ from generate()")
                return 1
            for name, run in (
                ("ours", lambda seed: fast.sample_tokens(prompt_ids, new_tokens, seed)),
                ("generate", lambda seed: reference_tokens(fast, prompt_ids, seed)),
            ):
                total = 0.0
                for seed, reference in zip(seeds, references):
                    start = time.perf_counter()
                    tokens = run(seed)
                    took = time.perf_counter() - start
                    calls[name].append(took)
                    total += took
                    if tokens != reference:
                        print(f"MISMATCH: {name} tokens differ from generate() for seed {seed}")
                        return 1
                batches["sequential" if name == "ours" else "generate"].append(total)
            start = time.perf_counter()
            tokens = exact.sample_tokens(prompt_ids, new_tokens, seeds[0])
            calls["ours_exact_head"].append(time.perf_counter() - start)
            if tokens != references[0]:
                print("MISMATCH: exact head tokens differ from generate()")
                return 1
        one = {name: statistics.median(times) for name, times in calls.items()}
        many = {name: statistics.median(times) for name, times in batches.items()}
        print("one expansion (median per call):")
        for name, median in one.items():
            print(f"{name:>18}: {median * 1000:8.1f} ms  ({median * 1000 / new_tokens:.2f} ms/token)")
        print(f"N = {args.batch} expansions of one prompt (median per batch):")
        labels = {"batched": "batched", "sequential": f"{args.batch} sequential", "generate": f"{args.batch} x generate()"}
        for name, median in many.items():
            print(f"{labels[name]:>18}: {median * 1000:8.1f} ms")
        print("identical tokens in every run (all rows, both heads, against generate())")
        single_vs_generate = one["ours"] / one["generate"]
        batched_vs_single = many["batched"] / one["ours"]
        print(
            f"one expansion / generate()       = {single_vs_generate:.3f}  (target <= 0.5; "
            f"exact head {one['ours_exact_head'] / one['generate']:.3f})"
        )
        print(f"batched {args.batch} / one expansion     = {batched_vs_single:.2f}   (target <= 2)")
        print(f"batched / {args.batch} sequential        = {many['batched'] / many['sequential']:.3f}")
        print(f"batched / {args.batch} x generate()      = {many['batched'] / many['generate']:.3f}")
        result = {
            "single_vs_generate": round(single_vs_generate, 3),
            "batched_vs_single": round(batched_vs_single, 2),
            "met": single_vs_generate <= 0.5 and batched_vs_single <= 2.0,
        }
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
