"""Fooocus V2 prompt expansion: a GPT-2 that appends allowed "positive" words to a prompt.

Behaviour follows Fooocus 2.5.5 (`extras/expansion.py` at 59f183ab: `FooocusExpansion.__call__` and
its `logits_processor`): every logit gets a -8192 bias except the words of
positive.txt (as 'Ġ'+word tokens) and ','; every token already in the sequence is banned again; top-k
100 at temperature 1; the sequence is filled up to the next multiple of 75 GPT-2 tokens.

The sampling reproduces what `transformers.set_seed(seed)` + `model.generate(do_sample=True, top_k=100)`
does, token for token, but draws from a private `torch.Generator` seeded the same way, so the caller's
python/numpy/torch random state is untouched. The decode loop is our own (KV cache, no `generate()`).
In float32 it is the fast loop: our own GPT-2 decoder over the model's weights (`decoder`: the shared
prompt runs once, a preallocated cache), the LM head evaluated only for the allowed tokens (the others
can never be drawn) and the softmax taken over those tokens. Each of these can move a probability by
a float32 rounding step (≈1e-7 relative): the sampled token changes only if two candidates tie that
closely, which no test or benchmark run ever hit. In float16 (GPU) a rounding step is ~1e-3, far
likelier to tip a draw, so there the model's own forward and the full head run exactly as
`generate()` runs them; `exact_head=True` forces that everywhere.

Licence of the model files (not of this code): the word list, vocabulary and weights are CC BY-NC 4.0
when used outside Fooocus — see `LICENSE_NOTICE`.

Heavy imports (torch, transformers, tokenizers) happen inside functions.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lib_fooocus.expansion import decoder as gpt2_decoder
from lib_fooocus.expansion.draws import ExponentialDraws
from lib_fooocus.expansion.files import (
    LICENSE_NOTICE,
    BrokenWeightsError,
    MissingExpansionFilesError,
    prepare_weights,
)
from lib_fooocus.text import safe_str

__all__ = [
    "LICENSE_NOTICE",
    "NEG_INF",
    "SEED_LIMIT",
    "TOP_K",
    "FooocusExpansion",
    "MissingExpansionFilesError",
    "apply_cleanup_spaces",
    "max_new_tokens_for",
    "safe_str",
]

log = logging.getLogger(__name__)

NEG_INF = -8192.0
SEED_LIMIT = 2**32  # transformers.set_seed feeds numpy, which accepts seeds below 2**32 only
TOP_K = 100
CHUNK_TOKENS = 75
ENGINE_FILES = ("config.json", "tokenizer.json", "positive.txt")  # what the engine reads besides weights

# What `clean_up_tokenization_spaces=True` did in the transformers release Fooocus pins (4.42.4), in
# that order. Newer releases no longer apply it for this tokenizer, so we do it ourselves.
_CLEANUP_REPLACEMENTS = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)

def apply_cleanup_spaces(text: str) -> str:
    for old, new in _CLEANUP_REPLACEMENTS:
        text = text.replace(old, new)
    return text


def max_new_tokens_for(prompt_tokens: int) -> int:
    """Fill up to the next multiple of 75 GPT-2 tokens (0 when already a multiple)."""
    return CHUNK_TOKENS * math.ceil(prompt_tokens / CHUNK_TOKENS) - prompt_tokens


def _read_positive_words(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return ["Ġ" + line.lower() for line in lines if line != ""]


def _forward_keeps_last_logit_only(model: Any) -> bool:
    """Whether `generate()` asks this model for the last position's logits only (transformers >= 4.45 for
    models that accept it): then the first step's head is a one-row product, otherwise all prompt rows."""
    import inspect

    parameters = inspect.signature(model.forward).parameters
    return "logits_to_keep" in parameters or "num_logits_to_keep" in parameters


def _dtype_keyword() -> str:
    """`from_pretrained` renamed `torch_dtype` to `dtype` in transformers 5."""
    import transformers

    major = int(transformers.__version__.split(".")[0])
    return "dtype" if major >= 5 else "torch_dtype"


class FooocusExpansion:
    """The expansion engine over a ready model folder (see `expansion_files` for the folder layout).

    Loads on construction. `device`/`dtype` default to CPU float32 (the reference); Apple MPS is
    replaced by CPU as Fooocus does.
    """

    def __init__(
        self,
        model_dir: str | Path,
        device: Any = None,
        dtype: Any = None,
        *,
        exact_head: bool | None = None,
    ):
        import torch

        self.model_dir = Path(model_dir)
        device = torch.device("cpu" if device is None else device)
        if device.type == "mps":
            device = torch.device("cpu")
        self.device = device
        self.dtype = torch.float32 if dtype is None else dtype
        # Auto: exact full head unless float32, where the allowed-rows head is safe (see module doc).
        self.exact_head = self.dtype != torch.float32 if exact_head is None else bool(exact_head)
        self._lock = threading.Lock()

        missing = [name for name in ENGINE_FILES if not (self.model_dir / name).is_file()]
        if missing:
            raise MissingExpansionFilesError(self.model_dir, missing)
        weights_path = prepare_weights(self.model_dir)
        self.tokenizer = self._load_tokenizer()
        try:
            self.model = self._load_model(weights_path)
        except ImportError:
            raise
        except Exception as error:  # OSError, SafetensorError, shape mismatches: a damaged file
            raise BrokenWeightsError(weights_path, f"{type(error).__name__}: {error}") from error
        self.vocab_size = int(self.model.config.vocab_size)
        self.max_positions = int(self.model.config.n_positions)
        self._build_token_tables()
        # The float32 fast path runs its own decoder; the exact path (and any GPT-2 variant the decoder
        # does not implement) runs the model's forward as generate() does.
        use_decoder = not self.exact_head and gpt2_decoder.supports(self.model)
        self._decoder = gpt2_decoder.Gpt2Decoder(self.model) if use_decoder else None
        log.info(
            "Fooocus V2 expansion loaded from %s on %s (%s), %d allowed words",
            self.model_dir,
            self.device,
            str(self.dtype).replace("torch.", ""),
            len(self.allowed_ids) - 1,
        )

    # ---- loading -------------------------------------------------------------------------------

    def _load_tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))

    def _load_model(self, weights_path: Path) -> Any:
        from transformers import GPT2LMHeadModel

        load_dir = weights_path.parent
        kwargs = {_dtype_keyword(): self.dtype, "local_files_only": True, "use_safetensors": True}
        if load_dir != self.model_dir:  # config.json lives in the model folder, weights elsewhere
            from transformers import GPT2Config

            config = GPT2Config.from_json_file(str(self.model_dir / "config.json"))
            model = GPT2LMHeadModel.from_pretrained(str(load_dir), config=config, **kwargs)
        else:
            model = GPT2LMHeadModel.from_pretrained(str(self.model_dir), **kwargs)
        return model.to(self.device).eval()

    def _build_token_tables(self) -> None:
        import torch

        vocab = self.tokenizer.get_vocab(with_added_tokens=True)
        if len(vocab) > self.vocab_size:
            msg = (
                f"Fooocus expansion: tokenizer.json has {len(vocab)} tokens but config.json says vocab_size "
                f"{self.vocab_size}; the files in {self.model_dir} do not belong together."
            )
            raise ValueError(msg)
        # Fooocus hard-codes id 11, which is ',' in GPT-2's vocabulary.
        self.comma_id = int(vocab.get(",", 11))
        positive = set(_read_positive_words(self.model_dir / "positive.txt"))
        word_ids = sorted(token_id for token, token_id in vocab.items() if token in positive)
        allowed = sorted(set(word_ids) | {self.comma_id})

        self.allowed_ids = torch.tensor(allowed, dtype=torch.long, device=self.device)
        self._allowed_index = {token_id: i for i, token_id in enumerate(allowed)}
        self._comma_index = self._allowed_index[self.comma_id]
        head_weight = self.model.get_output_embeddings().weight
        self._allowed_head = head_weight.detach().index_select(0, self.allowed_ids).contiguous()
        base = torch.full((1, self.vocab_size), NEG_INF, dtype=torch.float32, device=self.device)
        base[0, word_ids] = 0.0
        self.base_bias = base  # Fooocus's logits_bias (before the per-step ban)

    # ---- public --------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text).ids)

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def expand(self, prompt: str, seed: int) -> str:
        """Fooocus's expansion of `prompt` for `seed`: the cleaned prompt, ',', then allowed words."""
        return self.expand_batch(prompt, [seed])[0]

    def expand_batch(self, prompt: str, seeds: Sequence[int]) -> list[str]:
        """`[expand(prompt, s) for s in seeds]`, computed together: the shared prompt is run once per
        row in one batched forward and the rows are decoded side by side, each drawing from its own
        generator (seeded as `expand` seeds it), so each row draws exactly what `expand` draws. Equal
        seeds (mod 2**32) are computed once."""
        seeds = [int(seed) % SEED_LIMIT for seed in seeds]
        if not seeds:
            return []
        if prompt == "":
            return [""] * len(seeds)
        text = safe_str(prompt) + ","
        prompt_ids = self.encode(text)
        new_tokens = max_new_tokens_for(len(prompt_ids))
        if new_tokens == 0:
            return [text[:-1]] * len(seeds)
        if len(prompt_ids) + new_tokens > self.max_positions:
            # Fooocus's generate() would fail on positions past the model's 1024; keep the prompt as is.
            log.warning(
                "Fooocus V2 expansion skipped: the prompt has %d GPT-2 tokens, the model reads at most %d.",
                len(prompt_ids),
                self.max_positions,
            )
            return [text[:-1]] * len(seeds)
        unique = list(dict.fromkeys(seeds))
        with self._lock:
            rows = self.sample_tokens_batch(prompt_ids, new_tokens, unique)
        texts = {
            seed: safe_str(apply_cleanup_spaces(self.decode(prompt_ids + generated)))
            for seed, generated in zip(unique, rows)
        }
        return [texts[seed] for seed in seeds]

    def sample_tokens(self, prompt_ids: list[int], max_new_tokens: int, seed: int) -> list[int]:
        """The new token ids `generate()` would sample after `set_seed(seed)`."""
        return self.sample_tokens_batch(prompt_ids, max_new_tokens, [seed])[0]

    def sample_tokens_batch(
        self, prompt_ids: list[int], max_new_tokens: int, seeds: Sequence[int]
    ) -> list[list[int]]:
        """`[sample_tokens(prompt_ids, max_new_tokens, s) for s in seeds]`, decoded as one batch."""
        import torch

        generators = []
        for seed in seeds:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(int(seed))
            generators.append(generator)
        with torch.inference_mode():
            if self._decoder is not None:
                return self._fast_decode(prompt_ids, max_new_tokens, generators)
            return self._exact_decode(prompt_ids, max_new_tokens, generators)

    # ---- the fast loop: own decoder, allowed-rows head, sampling on the allowed tokens ---------------

    def _fast_decode(self, prompt_ids: list[int], max_new_tokens: int, generators: list[Any]) -> list[list[int]]:
        """Rows share the prompt (run once, see `Gpt2Decoder`) and the number of new tokens (no row can
        end early: the end token carries the -8192 bias, so its probability is exactly 0).

        Sampling draws what `torch.multinomial(probs, 1, generator=g)` draws on the full-vocabulary
        row, which is: one Exp(1) number per vocabulary entry from `g`, then argmax(p / e). Every entry
        outside the allowed tokens has p = 0 and so never wins; `g` still advances by the full vector
        of Exp(1) numbers, exactly as there (`draws.ExponentialDraws`). Row i draws only from
        `generators[i]`."""
        import torch

        rows = len(generators)
        decoder = self._decoder
        hidden = decoder.prefill(prompt_ids, rows, len(prompt_ids) + max_new_tokens - 1)
        try:
            bias = self._initial_allowed_bias(prompt_ids).repeat(rows, 1)
            draws = ExponentialDraws(rows, self.vocab_size, self.allowed_ids)
            k = min(TOP_K, bias.shape[1])
            picks = []
            for step in range(max_new_tokens):
                if step:
                    hidden = decoder.step(self.allowed_ids[picks[-1]])
                scores = torch.nn.functional.linear(hidden, self._allowed_head).float() + bias  # (1 or rows, A)
                threshold = torch.topk(scores, k)[0][:, -1:]
                probs = torch.softmax(scores.masked_fill_(scores < threshold, float("-inf")), dim=-1)
                pick = torch.argmax(probs.div_(draws.draw(generators)), dim=1)
                picks.append(pick)
                # Ban what was drawn; ',' may repeat.
                bias.scatter_(1, pick.unsqueeze(1), NEG_INF)
                bias[:, self._comma_index] = 0.0
        finally:
            decoder.release()
        return self.allowed_ids[torch.stack(picks, dim=1)].tolist()

    def _initial_allowed_bias(self, prompt_ids: list[int]) -> Any:
        """(1, allowed) bias: -8192 on allowed words already in the prompt, 0 elsewhere (',' always 0)."""
        import torch

        bias = torch.zeros((1, len(self._allowed_index)), dtype=torch.float32, device=self.device)
        banned = [self._allowed_index[t] for t in set(prompt_ids) if t in self._allowed_index]
        bias[0, banned] = NEG_INF
        bias[0, self._comma_index] = 0.0
        return bias

    # ---- the exact loop: the model's own forward and full head, as generate() runs them -------------

    def _exact_decode(self, prompt_ids: list[int], max_new_tokens: int, generators: list[Any]) -> list[list[int]]:
        """Rows share the prompt and the number of new tokens. Row i draws only from `generators[i]`,
        with `multinomial` on its own (1, vocab) row, as the one-row loop does."""
        import torch

        rows = len(generators)
        bias = self.base_bias.clone()
        bias[0, prompt_ids] = NEG_INF
        bias[0, self.comma_id] = 0.0
        bias = bias.repeat(rows, 1)
        total = len(prompt_ids) + max_new_tokens
        attention_mask = torch.ones((rows, total), dtype=torch.long, device=self.device)
        positions = torch.arange(total, dtype=torch.long, device=self.device).unsqueeze(0).expand(rows, -1)
        current = torch.tensor([prompt_ids] * rows, dtype=torch.long, device=self.device)
        done = 0
        past = None
        generated: list[list[int]] = [[] for _ in range(rows)]
        for _ in range(max_new_tokens):
            end = done + current.shape[1]
            # Same inputs as generate() passes (2-D all-ones mask, explicit positions), so the
            # transformer runs the same kernels and gives the same hidden states.
            outputs = self.model.transformer(
                input_ids=current,
                past_key_values=past,
                attention_mask=attention_mask[:, :end],
                position_ids=positions[:, done:end],
                use_cache=True,
                return_dict=True,
            )
            past = outputs.past_key_values
            scores = self._exact_step(outputs.last_hidden_state, bias, done == 0)
            probs = torch.nn.functional.softmax(scores, dim=-1)
            tokens = [
                torch.multinomial(probs[row : row + 1], num_samples=1, generator=generator)
                for row, generator in enumerate(generators)
            ]
            for row, token in enumerate(tokens):
                token_id = int(token.item())
                generated[row].append(token_id)
                if token_id != self.comma_id:
                    bias[row, token_id] = NEG_INF
            current = torch.cat(tokens, dim=0) if rows > 1 else tokens[0].view(1, 1)
            done = end
        return generated

    def _exact_step(self, hidden: Any, bias: Any, first: bool) -> Any:
        """Full-vocabulary head, as generate() computes it."""
        import torch

        if not first or _forward_keeps_last_logit_only(self.model):
            hidden = hidden[:, -1:, :]
        logits = self.model.get_output_embeddings()(hidden)[:, -1, :].float()
        scores = logits + bias
        threshold = torch.topk(scores, TOP_K)[0][..., -1, None]
        return scores.masked_fill(scores < threshold, float("-inf"))
