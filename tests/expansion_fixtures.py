"""A tiny Fooocus-expansion model folder made in the test: a byte-level BPE tokenizer trained here, a
random 2-layer GPT-2 and a positive-word list, written in the same layout as the real folder."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch

from lib_fooocus.downloads import sha256_of_file
from lib_fooocus.expansion.files import SAFETENSORS_NAME, ExpansionSource


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The tiny model's ops are microseconds long; with the machine's 2 cores shared, a second torch
    thread only adds waiting. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SMALL_NAMES = (
    "config.json",
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "positive.txt",
)

_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "bo", "di", "fu", "go")
COMMON_WORDS = ("a", "photo", "of", "the", "with", "and", "in", "cat", "dog", "house", "tree", "river")


def made_up_words(count: int) -> list[str]:
    pairs = ("".join(p) for p in itertools.product(_SYLLABLES, repeat=2))
    return list(itertools.islice(pairs, count))


POSITIVE_WORDS = made_up_words(150)


def _corpus() -> list[str]:
    words = [*POSITIVE_WORDS, *COMMON_WORDS]
    lines = []
    for shift in range(12):
        rotated = words[shift * 7 :] + words[: shift * 7]
        for start in range(0, len(rotated), 12):
            lines.append(" ".join(rotated[start : start + 12]) + ", a photo of the cat.")
    return lines


def train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer)
    return tokenizer


def tiny_state_dict(vocab_size: int, eos_id: int, comma_id: int, seed: int = 1234, logit_scale: float = 1.0):
    """A random 2-layer GPT-2. `logit_scale` multiplies the final layer norm's gain, which scales every
    logit by the same factor (a temperature): below 1 the words' distributions get flatter."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=256,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
        # Bigger output weights than the init's, so the words' probabilities differ clearly.
        with torch.no_grad():
            model.transformer.wte.weight.normal_(0.0, 0.5)
            # A small comma row, so that commas do not crowd out the words.
            model.transformer.wte.weight[comma_id].mul_(0.1)
            model.transformer.ln_f.weight.mul_(logit_scale)
    return config, model.state_dict()


def write_model_dir(
    folder: Path,
    *,
    weights: str = "pickle",
    positive_words: list[str] | None = None,
    fp16: bool = True,
    logit_scale: float = 1.0,
) -> Path:
    """Write the folder. weights: 'pickle' (pytorch_model.bin, like Fooocus), 'hub-pickle'
    (fooocus_expansion.bin), 'safetensors' or 'none'."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer()
    tokenizer.save(str(folder / "tokenizer.json"))
    tokenizer.model.save(str(folder))  # vocab.json, merges.txt
    vocab = tokenizer.get_vocab()
    eos_id = vocab["<|endoftext|>"]
    config, state = tiny_state_dict(len(vocab), eos_id, vocab[","], logit_scale=logit_scale)
    config.save_pretrained(str(folder))
    special = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")
    tokenizer_config = {
        "tokenizer_class": "GPT2Tokenizer",
        "add_prefix_space": False,
        "model_max_length": 256,
    }
    (folder / "tokenizer_config.json").write_text(
        json.dumps({**tokenizer_config, **special}), encoding="utf-8"
    )
    words = POSITIVE_WORDS if positive_words is None else positive_words
    # Mixed case and a blank line, as a hand-edited list would have; Fooocus lower-cases them.
    lines = [w.upper() if i % 17 == 0 else w for i, w in enumerate(words)]
    (folder / "positive.txt").write_text("\n".join([*lines[:5], "", *lines[5:]]) + "\n", encoding="utf-8")
    if fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    if weights == "pickle":
        torch.save(state, folder / "pytorch_model.bin")
    elif weights == "hub-pickle":
        torch.save(state, folder / "fooocus_expansion.bin")
    elif weights == "safetensors":
        from safetensors.torch import save_file

        from lib_fooocus.expansion.files import state_dict_for_safetensors

        save_file(
            state_dict_for_safetensors(state), str(folder / SAFETENSORS_NAME), metadata={"format": "pt"}
        )
    return folder


def small_file_hashes(folder: Path) -> tuple[tuple[str, str], ...]:
    return tuple((name, sha256_of_file(folder / name)) for name in SMALL_NAMES)


def fooocus_logits_processor(base_bias: torch.Tensor, comma_id: int):
    """Fooocus's processor (`extras/expansion.py`, `logits_processor`), in our words: bias copy, ban every token in the sequence, comma 0."""

    def process(input_ids, scores):
        bias = base_bias.to(scores).clone()
        bias[0, input_ids[0].long()] = -8192.0
        bias[0, comma_id] = 0.0
        return scores + bias

    return process


def reference_bias(folder: Path, vocab_size: int) -> tuple[torch.Tensor, int]:
    """Fooocus's logits bias and comma id, built straight from the folder's files."""
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    lines = (folder / "positive.txt").read_text(encoding="utf-8").splitlines()
    wanted = {"\u0120" + line.lower() for line in lines if line}
    bias = torch.full((1, vocab_size), -8192.0)
    for token, token_id in vocab.items():
        if token in wanted:
            bias[0, token_id] = 0.0
    return bias, vocab[","]


def reference_generate(model, folder: Path, prompt_ids: list[int], seed: int) -> list[int]:
    """New tokens as Fooocus gets them: `set_seed` + `model.generate(do_sample=True, top_k=100)`."""
    import transformers
    from transformers.generation.logits_process import LogitsProcessorList

    base_bias, comma_id = reference_bias(folder, model.config.vocab_size)

    new_tokens = 75 * math.ceil(len(prompt_ids) / 75) - len(prompt_ids)
    input_ids = torch.tensor([prompt_ids])
    transformers.set_seed(seed)
    processor = fooocus_logits_processor(base_bias, comma_id)
    with torch.inference_mode():
        output = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=True,
            top_k=100,
            max_new_tokens=new_tokens,
            logits_processor=LogitsProcessorList([processor]),
            pad_token_id=model.config.eos_token_id,
        )
    return output[0, len(prompt_ids) :].tolist()


# ---- a local stand-in for the Hugging Face hub and GitHub's raw files (127.0.0.1 only) ----------------

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_endpoint(monkeypatch, url: str) -> str | None:
    """The endpoint setting that points huggingface_hub at `url`: the setting where this
    huggingface_hub takes one (0.17+), else its URL template (what HF_ENDPOINT sets at import)."""
    import inspect

    import huggingface_hub
    from huggingface_hub import file_download

    if "endpoint" in inspect.signature(huggingface_hub.hf_hub_url).parameters:
        return url
    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    return None


class Hold:
    """A download paused part-way: `reached` is set once `sent` bytes are out, `released` lets it end."""

    def __init__(self, sent: int):
        import threading

        self.sent = sent
        self.reached = threading.Event()
        self.released = threading.Event()


class FakeHub:
    """Serves `/{repo}/resolve/{revision}/{file}` like the hub (ETag/X-Linked-Etag = sha256,
    X-Repo-Commit, Range) and `/github/{file}` like raw GitHub. `mode[path]` picks the behaviour of a
    file: 'good', 'truncated' (fewer bytes, announced as such), 'broken' (the full length announced,
    half sent, connection closed: `http.client.IncompleteRead`) or 'wrong' (other bytes, same length).
    `hold(path, sent)` makes a download of that file stop after `sent` bytes until released, so a test
    can look at it half done."""

    def __init__(self):
        import hashlib
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.files: dict[str, bytes] = {}
        self.mode: dict[str, str] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.holds: dict[str, Hold] = {}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _lookup(self):
                path = self.path.split("?")[0]
                if path.startswith("/github/"):
                    key = path
                else:
                    parts = path.strip("/").split("/")
                    if len(parts) < 5 or parts[2] != "resolve":
                        return path, None
                    key = "/".join(parts[:2]) + "/" + "/".join(parts[4:])
                return key, hub.files.get(key)

            def _headers(self, key, content, length):
                sha = hashlib.sha256(content).hexdigest()
                self.send_header("Content-Length", str(length))
                self.send_header("Accept-Ranges", "bytes")
                if not key.startswith("/github/"):
                    self.send_header("ETag", f'"{sha}"')
                    self.send_header("X-Linked-Etag", f'"{sha}"')
                    self.send_header("X-Linked-Size", str(len(content)))
                    self.send_header("X-Repo-Commit", FAKE_COMMIT)

            def do_HEAD(self):
                key, content = self._lookup()
                hub.requests.append(("HEAD", key, self.headers.get("Range")))
                if content is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self._headers(key, content, len(content))
                self.end_headers()

            def do_GET(self):
                key, content = self._lookup()
                hub.requests.append(("GET", key, self.headers.get("Range")))
                if content is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                mode = hub.mode.get(key, "good")
                body = content
                if mode == "wrong":
                    body = bytes(b ^ 0x55 for b in content[:64]) + content[64:]
                start = 0
                range_header = self.headers.get("Range")
                if range_header and range_header.startswith("bytes="):
                    start = int(range_header[6:].split("-")[0])
                if mode == "truncated":
                    body = content[: len(content) // 2]
                payload = body[start:]
                self.send_response(206 if start else 200)
                sha = hashlib.sha256(content).hexdigest()
                self.send_header("Content-Length", str(len(payload)))
                if mode == "broken":
                    payload = payload[: len(payload) // 2]
                    self.close_connection = True
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
                if not key.startswith("/github/"):
                    self.send_header("ETag", f'"{sha}"')
                    self.send_header("X-Linked-Etag", f'"{sha}"')
                    self.send_header("X-Repo-Commit", FAKE_COMMIT)
                self.end_headers()
                hold = hub.holds.get(key)
                if hold is not None and not hold.released.is_set():
                    self.wfile.write(payload[: hold.sent])
                    self.wfile.flush()
                    hold.reached.set()
                    hold.released.wait(60)
                    payload = payload[hold.sent :]
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.endpoint: str | None = self.url
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        for hold in self.holds.values():
            hold.released.set()
        self.server.shutdown()
        self.server.server_close()

    def hold(self, key: str, sent: int) -> Hold:
        """Downloads of `key` send `sent` bytes, then wait until `.released` is set."""
        self.holds[key] = Hold(sent)
        return self.holds[key]

    def add_model_folder(self, folder: Path, repo: str = "lllyasviel/misc") -> None:
        """Small files under /github/, the folder's pickle as the hub's fooocus_expansion.bin."""
        for name in SMALL_NAMES:
            self.files[f"/github/{name}"] = (folder / name).read_bytes()
        self.files[f"{repo}/fooocus_expansion.bin"] = (folder / "pytorch_model.bin").read_bytes()


def source_for(hub: FakeHub, original: Path, cache: Path) -> ExpansionSource:
    """Where the model-folder tests download from: the fake hub, pinned to the tiny folder's hashes."""
    return ExpansionSource(
        files_url=hub.url + "/github/",
        endpoint=hub.endpoint,
        cache_dir=str(cache),
        hashes=small_file_hashes(original),
    )
