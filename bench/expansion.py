"""Bench: our Fooocus V2 expansion decode loop vs a `generate()`-based reference.

    python bench/expansion.py [--repeats 5] [--threads 1] [--batch 8] [--prompt "..."] [--seed 12345] [--model-dir D]
                              [--contended [--contenders N]]

A random-weight GPT-2 with the real model's shape (12 layers, 768 wide, 12 heads, vocab 50257) and a
synthetic byte-level BPE tokenizer of 50257 tokens with 642 allowed words (like positive.txt) are built
in a temporary folder (or `--model-dir`, kept for the next run) and loaded through the real loading path.
Rounds are interleaved: per round, `generate()` for one seed, our expansion of that seed, the batch of
N seeds in one call, (with `--exact-head`) the exact-head expansion, the decoder's transformer work alone for 1 and N rows
(no head, no sampling), and the loop's matrix products alone for 1 and N rows (nothing else: the floor). Every run must give generate()'s tokens. Ratios
are taken within a round (so load changes hit both sides alike), then the median over rounds, in wall
time and in this process's CPU time (one torch thread each side: the work done, which a busy machine
stretches far less than wall time); the load average before and after is printed. Targets: one expansion <= 0.5 x generate(), the batch of 8 <= 2 x
one expansion. `--contended` runs the rounds beside another torch process doing 2-thread matrix
products (`--contenders N`: N of them; bench/contention.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contention import (  # bench/contention.py: this script's folder is on sys.path
    contending_processes,
    describe,
)

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


def decoder_body(engine, prompt_ids: list[int], new_tokens: int, rows: int) -> None:
    """The fast loop's transformer work alone: prefill, then one step per new token with fixed
    tokens; no head, no top-k, no sampling."""
    import torch

    decoder = engine._decoder
    with torch.inference_mode():
        decoder.prefill(prompt_ids, rows, len(prompt_ids) + new_tokens - 1)
        tokens = torch.full((rows,), engine.comma_id, dtype=torch.long)
        for _ in range(new_tokens - 1):
            decoder.step(tokens)
        decoder.release()


def products_only(engine, new_tokens: int, rows: int) -> None:
    """The fast loop's matrix products alone, on the real weights at the real shapes: per new token the
    four products of every block and the allowed-word head, nothing else (no layer norm, attention,
    GELU, sampling). What the memory traffic and the BLAS kernels cost: the floor under the loop."""
    import torch

    decoder = engine._decoder
    with torch.inference_mode():
        first = decoder.layers[0]
        inputs = {size: torch.randn(rows, size) for size in (first.fc_weight.shape[0], first.out_weight.shape[0])}
        layer_packs = decoder.packs_for(rows)  # what the loop multiplies with
        for _ in range(new_tokens):
            for layer, packs in zip(decoder.layers, layer_packs):
                for weight, bias, packed_weight in zip(layer.weights(), layer.biases(), packs or (None,) * 4):
                    decoder._product(bias, inputs[weight.shape[0]], weight, packed_weight)
            torch.nn.functional.linear(inputs[decoder.width], engine._allowed_head)


def scheduler_wait() -> float:
    """Seconds this thread has spent runnable but waiting for a CPU (Linux /proc/thread-self/schedstat,
    second field); 0.0 where it is not available."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def run_rounds(repeats, candidates, seeds, references, times, cpu, waits) -> bool:
    """Interleaved rounds: every candidate runs once per round, one after the other, so a change in the
    machine's load hits all of them alike. False on a token mismatch."""
    for round_index in range(repeats):
        row = round_index % len(seeds)
        for name, run in candidates.items():
            start, start_cpu, start_wait = time.perf_counter(), time.process_time(), scheduler_wait()
            tokens = run(seeds[row])
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            waits[name].append(scheduler_wait() - start_wait)
            expected = references if name == "batched" else references[row]
            if not name.startswith(("body_only", "products_only")) and tokens != expected:
                print(f"MISMATCH: {name} tokens differ from generate() (round {round_index})")
                return False
        print(f"round {round_index + 1}: one/generate {times['ours'][-1] / times['generate'][-1]:.3f} wall "
              f"{cpu['ours'][-1] / cpu['generate'][-1]:.3f} CPU, batched/one "
              f"{times['batched'][-1] / times['ours'][-1]:.2f} wall {cpu['batched'][-1] / cpu['ours'][-1]:.2f} CPU",
              flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--prompt", default="a cat on a sofa")
    parser.add_argument("--seed", type=int, default=12345, help="row i of the batch uses seed + i")
    parser.add_argument("--batch", type=int, default=8, help="N: images of one batch (default 8)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for both sides (default 1: on a shared 2-core machine extra threads mostly wait)",
    )
    parser.add_argument("--exact-head", action="store_true", help="also time the exact-head loop")
    parser.add_argument("--contended", action="store_true",
                        help="run the rounds beside another torch process doing 2-thread matrix products")
    parser.add_argument("--contenders", type=int, default=1, help="with --contended: how many (default 1)")
    parser.add_argument("--contended-seconds", type=float, default=1800.0,
                        help="a contending process stops itself after this long (default 1800)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="build the random model here once and reuse it on later runs")
    args = parser.parse_args(argv)

    import torch
    import transformers

    torch.set_num_threads(args.threads)

    from lib_fooocus.expansion.engine import FooocusExpansion, max_new_tokens_for, safe_str

    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads"
    )
    with tempfile.TemporaryDirectory(prefix="bench-expansion-") as scratch:
        folder = args.model_dir or Path(scratch)
        if not (folder / "model.safetensors").is_file():
            folder.mkdir(parents=True, exist_ok=True)
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
        print(f"generate() references for the {len(seeds)} seeds done", flush=True)
        fast.sample_tokens_batch(prompt_ids, new_tokens, seeds[:2])
        candidates = {
            "generate": lambda seed: reference_tokens(fast, prompt_ids, seed),
            "ours": lambda seed: fast.sample_tokens(prompt_ids, new_tokens, seed),
            "batched": lambda seed: fast.sample_tokens_batch(prompt_ids, new_tokens, seeds),
            "body_only": lambda seed: decoder_body(fast, prompt_ids, new_tokens, 1),
            "body_only_batch": lambda seed: decoder_body(fast, prompt_ids, new_tokens, len(seeds)),
            "products_only": lambda seed: products_only(fast, new_tokens, 1),
            "products_only_batch": lambda seed: products_only(fast, new_tokens, len(seeds)),
        }
        if args.exact_head:
            candidates["ours_exact_head"] = lambda seed: exact.sample_tokens(prompt_ids, new_tokens, seed)
        # Interleaved rounds: every candidate runs once per round, one after the other, so a change in
        # the machine's load hits all of them alike; ratios are taken within a round, then the median.
        times: dict[str, list[float]] = {name: [] for name in candidates}
        cpu: dict[str, list[float]] = {name: [] for name in candidates}  # CPU time of this process
        waits: dict[str, list[float]] = {name: [] for name in candidates}  # runnable, waiting for a CPU
        load_before = os.getloadavg()
        with contending_processes(args.contenders if args.contended else 0, args.contended_seconds):
            if not run_rounds(args.repeats, candidates, seeds, references, times, cpu, waits):
                return 1
        load_after = os.getloadavg()
        median = {name: statistics.median(values) for name, values in times.items()}

        def round_ratio(top: str, bottom: str, table: dict[str, list[float]] = times) -> float:
            return statistics.median(a / b for a, b in zip(table[top], table[bottom]))

        def both(top: str, bottom: str) -> str:
            """Wall-clock ratio, then the same in CPU time: with one torch thread on each side, CPU time
            is the work done, which other processes on the machine do not stretch as they stretch
            wall time (they still share caches and memory bandwidth)."""
            return f"{round_ratio(top, bottom):.3f} wall, {round_ratio(top, bottom, cpu):.3f} CPU"

        print(describe(args.contenders if args.contended else 0))
        print(f"{args.repeats} interleaved rounds; load average before {load_before[0]:.2f}, after "
              f"{load_after[0]:.2f} (1 min; {os.cpu_count()} CPUs)")
        labels = {
            "generate": "generate()",
            "ours": "one expansion",
            "batched": f"batched {args.batch}",
            "ours_exact_head": "exact head",
            "body_only": "decoder body, 1 row",
            "body_only_batch": f"decoder body, {args.batch} rows",
            "products_only": "products alone, 1 row",
            "products_only_batch": f"products alone, {args.batch} rows",
        }
        for name, values in median.items():
            print(f"{labels[name]:>22}: {values * 1000:8.1f} ms  ({values * 1000 / new_tokens:.2f} ms/token), "
                  f"CPU {statistics.median(cpu[name]) * 1000:8.1f} ms, waiting for a CPU "
                  f"{statistics.median(waits[name]) * 1000:8.1f} ms")
        print("(wall = CPU + waiting for a CPU + anything else, e.g. sleeping; the waiting is the main thread's, "
              "the time other processes had the cores)")
        print("identical tokens in every run (every row of the batch, both heads, against generate())")
        single_vs_generate = round_ratio("ours", "generate")
        batched_vs_single = round_ratio("batched", "ours")
        single_cpu = round_ratio("ours", "generate", cpu)
        batched_cpu = round_ratio("batched", "ours", cpu)
        print("ratios (median over rounds of the ratio within a round):")
        print(f"  one expansion / generate()          = {both('ours', 'generate')}  (target <= 0.5)")
        print(f"  batched {args.batch} / one expansion          = {both('batched', 'ours')}  (target <= 2)")
        if args.exact_head:
            print(f"  exact head / generate()             = {both('ours_exact_head', 'generate')}")
        print(f"  decoder body 1 row / one expansion  = {both('body_only', 'ours')}  "
              "(the rest: head, top-k, sampling, Python)")
        print(f"  decoder body 1 row / generate()     = {both('body_only', 'generate')}  "
              "(the transformer work without head and sampling)")
        print(f"  decoder body {args.batch} rows / 1 row         = {both('body_only_batch', 'body_only')}")
        print(f"  products alone 1 row / generate()   = {both('products_only', 'generate')}  "
              "(the floor of one expansion / generate(): its matrix products and nothing else)")
        print(f"  products alone {args.batch} rows / 1 row       = {both('products_only_batch', 'products_only')}  "
              f"(the floor of batched / one expansion: the {args.batch}-row products against the 1-row ones)")
        block_bytes = sum(p.numel() * p.element_size() for p in fast.model.transformer.h.parameters())
        head_bytes = fast.model.get_output_embeddings().weight.numel() * 4
        allowed_bytes = fast._allowed_head.numel() * 4
        print(f"  weights read per new token: ours {(block_bytes + allowed_bytes) / 2**20:.0f} MiB (the blocks + "
              f"{fast._allowed_head.shape[0]} head rows), generate() {(block_bytes + head_bytes) / 2**20:.0f} MiB (the "
              f"blocks + the full head) = {(block_bytes + allowed_bytes) / (block_bytes + head_bytes):.2f}: one row's "
              "matrix products stream every weight from memory once per token")
        result = {
            "single_vs_generate": round(single_vs_generate, 3),
            "batched_vs_single": round(batched_vs_single, 2),
            "single_vs_generate_cpu": round(single_cpu, 3),
            "batched_vs_single_cpu": round(batched_cpu, 2),
            "met": single_vs_generate <= 0.5 and batched_vs_single <= 2.0,
            "floor_single_vs_generate": round(round_ratio("products_only", "generate"), 3),
            "floor_batched_vs_single": round(round_ratio("products_only_batch", "products_only"), 2),
            "load": [round(load_before[0], 2), round(load_after[0], 2)],
        }
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
