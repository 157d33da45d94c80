"""Loading the refiner's UNet: a random-weight SDXL-refiner-shaped UNet (small channel counts) saved
as safetensors goes through the real loading code; pickle files and unusable models are refused with
a log line and a `Fooocus note`, and the generation goes on without refiner."""

from __future__ import annotations

import os
import types

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from lib_fooocus.hosts import refiner_swap
from lib_fooocus.hosts.lifecycle import GenerationState
from lib_fooocus.params import FooocusParams
from lib_fooocus.refiner import unet_file


class TinyUNet(nn.Module):
    """The SDXL UNet's key names that matter here, with tiny channel counts."""

    def __init__(self, adm: int = 2816, context: int = 2048, channels: int = 8, **_config):
        super().__init__()
        self.input_blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(4, channels, 3, padding=1))])
        self.label_emb = nn.Sequential(nn.Sequential(nn.Linear(adm, channels)))
        block = nn.Module()
        block.attn2 = nn.Module()
        block.attn2.to_k = nn.Linear(context, channels, bias=False)
        self.middle_block = nn.ModuleList([block])
        self.out = nn.Sequential(nn.GroupNorm(2, channels), nn.SiLU(), nn.Conv2d(channels, 4, 3, padding=1))


def construct(config, _state=None):
    return TinyUNet(adm=config["adm_in_channels"], context=config["context_dim"], channels=config["model_channels"])


def save_checkpoint(path, unet: nn.Module, extra: bool = True) -> dict[str, torch.Tensor]:
    tensors = {f"model.diffusion_model.{k}": v.contiguous() for k, v in unet.state_dict().items()}
    if extra:  # CLIP / VAE parts that must stay on disk
        tensors["conditioner.embedders.0.weight"] = torch.randn(3, 3)
        tensors["first_stage_model.decoder.weight"] = torch.randn(2, 2)
    save_file(tensors, str(path))
    return tensors


@pytest.fixture
def fresh_cache(monkeypatch):
    cache = unet_file.UnetCache()
    monkeypatch.setattr(unet_file, "CACHE", cache)
    return cache


def make_state(tmp_path, name="refiner.safetensors", base_file=None):
    base = TinyUNet()
    sd_model = types.SimpleNamespace(model=types.SimpleNamespace(diffusion_model=base),
                                     sd_checkpoint_info=types.SimpleNamespace(filename=str(base_file or tmp_path / "base.safetensors")))
    p = types.SimpleNamespace(sd_model=sd_model, extra_generation_params={}, refiner_checkpoint_info=None)
    params = FooocusParams(enabled=True, refiner_checkpoint=name, refiner_switch=0.8)
    return GenerationState(p=p, params=params, host="a1111"), base


def resolver(tmp_path):
    def resolve(name):
        path = tmp_path / name
        return (f"{name} [0123abcd]", str(path)) if path.exists() else None

    return resolve


def test_sdxl_refiner_shaped_unet_is_loaded_from_safetensors_and_cached(tmp_path, fresh_cache) -> None:
    torch.manual_seed(0)
    saved = save_checkpoint(tmp_path / "refiner.safetensors", TinyUNet(adm=2560, context=1280))
    state, _base = make_state(tmp_path)
    swap = refiner_swap.prepare_refiner(state, resolve=resolver(tmp_path), construct=lambda base: construct)
    assert swap is not None and swap.kind == "sdxl-refiner" and swap.ratio == 0.8
    loaded = swap.unet.state_dict()
    assert set(loaded) == {k.removeprefix("model.diffusion_model.") for k in saved if k.startswith("model.diffusion_model.")}
    for key, value in loaded.items():
        assert torch.equal(value, saved[f"model.diffusion_model.{key}"])
    assert not any(p.requires_grad for p in swap.unet.parameters()) and not swap.unet.training
    assert fresh_cache.loads == 1
    # the next request: from the cache, nothing read from disk
    again = refiner_swap.prepare_refiner(make_state(tmp_path)[0], resolve=resolver(tmp_path), construct=lambda base: construct)
    assert again.unet is swap.unet and fresh_cache.loads == 1
    # a changed file (mtime) is read again
    stat = os.stat(tmp_path / "refiner.safetensors")
    os.utime(tmp_path / "refiner.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = refiner_swap.prepare_refiner(make_state(tmp_path)[0], resolve=resolver(tmp_path), construct=lambda base: construct)
    assert third.unet is not swap.unet and fresh_cache.loads == 2


def test_sdxl_base_type_refiner_is_a_copy_of_the_base_class_with_the_files_weights(tmp_path, fresh_cache) -> None:
    torch.manual_seed(1)
    saved = save_checkpoint(tmp_path / "second.safetensors", TinyUNet())
    state, base = make_state(tmp_path, "second.safetensors")
    base_before = {k: v.clone() for k, v in base.state_dict().items()}
    swap = refiner_swap.prepare_refiner(state, resolve=resolver(tmp_path), construct=lambda base: None)
    assert swap.kind == "sdxl-base" and type(swap.unet) is TinyUNet and swap.unet is not base
    for key, value in swap.unet.state_dict().items():
        assert torch.equal(value, saved[f"model.diffusion_model.{key}"])
    assert all(torch.equal(v, base_before[k]) for k, v in base.state_dict().items())  # the base untouched


def test_the_copy_forgets_the_bases_lora_state(tmp_path, fresh_cache) -> None:
    """A1111's built-in Lora marks and backs up base modules; the copy must not inherit that (it would
    apply the base's LoRAs to the refiner or restore the base's weights into it)."""
    save_checkpoint(tmp_path / "second.safetensors", TinyUNet())
    state, base = make_state(tmp_path, "second.safetensors")
    conv = base.input_blocks[0][0]
    conv.network_layer_name = "input_blocks_0_0"
    conv.network_weights_backup = conv.weight.detach().clone()
    conv.network_current_names = (("lora", 1.0),)
    swap = refiner_swap.prepare_refiner(state, resolve=resolver(tmp_path), construct=lambda base: None)
    copied = swap.unet.input_blocks[0][0]
    assert not [n for n in vars(copied) if n.startswith("network_")]
    assert conv.network_layer_name == "input_blocks_0_0"  # the base keeps its own


def test_the_copy_gets_none_of_the_hooks_on_the_bases_modules(tmp_path, fresh_cache) -> None:
    """Hooks a host or extension put on the base (for its own generation) are not carried into the
    cached refiner, where they would run in every later generation; the base keeps them."""
    save_checkpoint(tmp_path / "second.safetensors", TinyUNet())
    state, base = make_state(tmp_path, "second.safetensors")
    calls: list[str] = []

    def pre_hook(module, args, kwargs):
        calls.append("pre")

    base.register_forward_pre_hook(pre_hook, with_kwargs=True)
    base.input_blocks[0][0].register_forward_hook(lambda module, args, output: calls.append("post"))
    swap = refiner_swap.prepare_refiner(state, resolve=resolver(tmp_path), construct=lambda base: None)
    x = torch.randn(1, 4, 8, 8)
    swap.unet.input_blocks[0][0](x)
    with pytest.raises(NotImplementedError):
        swap.unet(x)  # TinyUNet has no forward: its pre-hooks run first, then torch raises
    assert calls == []
    base.input_blocks[0][0](x)
    with pytest.raises(NotImplementedError):
        base(x)
    assert calls == ["post", "pre"]


class ForwardUNet(TinyUNet):
    def forward(self, x):
        return self.input_blocks[0][0](x)


def test_the_copy_gets_none_of_the_bases_method_overrides(tmp_path, fresh_cache) -> None:
    """sd-webui-controlnet replaces the base UNet's `forward` on the instance for its generation (and
    restores it on the base only): a refiner copied meanwhile runs its class's own forward, and the
    replacement's objects are not deep-copied."""
    save_checkpoint(tmp_path / "second.safetensors", ForwardUNet())
    state, _ = make_state(tmp_path, "second.safetensors")
    base = ForwardUNet()
    state.p.sd_model.model.diffusion_model = base

    class ControlHook:
        copies = 0

        def __deepcopy__(self, memo):
            ControlHook.copies += 1
            return ControlHook()

        def forward(self, x):
            return torch.zeros(1)

    hook = ControlHook()
    base.forward = hook.forward
    base.input_blocks[0][0].forward = lambda x: torch.ones(1)
    swap = refiner_swap.prepare_refiner(state, resolve=resolver(tmp_path), construct=lambda base: None)
    x = torch.randn(1, 4, 8, 8)
    assert "forward" not in vars(swap.unet) and "forward" not in vars(swap.unet.input_blocks[0][0])
    assert swap.unet(x).shape == (1, 8, 8, 8)  # the class's forward and Conv2d's own
    assert ControlHook.copies == 0
    assert base(x).shape == (1,)  # the base keeps what was put on it


def _refused(state, caplog) -> str:
    note = state.p.extra_generation_params.get("Fooocus note", "")
    assert note.startswith("refiner off: ")
    assert any("generating without refiner" in r.getMessage() for r in caplog.records)
    return note


def test_pickle_checkpoint_is_refused_never_unpickled(tmp_path, fresh_cache, caplog, monkeypatch) -> None:
    torch.save({"state_dict": TinyUNet(adm=2560, context=1280).state_dict()}, tmp_path / "refiner.ckpt")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load called"))
    state, _ = make_state(tmp_path, "refiner.ckpt")
    assert refiner_swap.prepare_refiner(state, resolve=resolver(tmp_path), construct=lambda base: construct) is None
    assert "not a safetensors file" in _refused(state, caplog)


@pytest.mark.parametrize(("context", "word"), [(768, "SD1.x"), (1024, "SD2.x")])
def test_sd1_and_sd2_refiners_are_refused(tmp_path, fresh_cache, caplog, context, word) -> None:
    unet = TinyUNet(context=context)
    del unet.label_emb
    save_checkpoint(tmp_path / "sd.safetensors", unet)
    state, _ = make_state(tmp_path, "sd.safetensors")
    assert refiner_swap.prepare_refiner(state, resolve=resolver(tmp_path), construct=lambda base: construct) is None
    assert word in _refused(state, caplog)


def test_missing_unknown_and_corrupt_files_are_refused(tmp_path, fresh_cache, caplog) -> None:
    state, _ = make_state(tmp_path, "nope.safetensors")
    assert refiner_swap.prepare_refiner(state, resolve=resolver(tmp_path)) is None
    assert "not in the checkpoint list" in _refused(state, caplog)
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    state, _ = make_state(tmp_path, "broken.safetensors")
    assert refiner_swap.prepare_refiner(state, resolve=resolver(tmp_path)) is None
    assert "not a safetensors file" in _refused(state, caplog)


def test_refiner_equal_to_the_base_is_off(tmp_path, fresh_cache) -> None:
    save_checkpoint(tmp_path / "base.safetensors", TinyUNet())
    state, _ = make_state(tmp_path, "base.safetensors", base_file=tmp_path / "base.safetensors")
    assert refiner_swap.prepare_refiner(state, resolve=resolver(tmp_path)) is None
    assert state.p.extra_generation_params["Fooocus note"] == "refiner equals the base model, off"
    assert fresh_cache.loads == 0


def test_a_non_sdxl_base_is_refused(tmp_path, fresh_cache, caplog) -> None:
    save_checkpoint(tmp_path / "refiner.safetensors", TinyUNet(adm=2560, context=1280))
    state, base = make_state(tmp_path)
    del base.label_emb  # an SD1.5 base
    assert refiner_swap.prepare_refiner(state, resolve=resolver(tmp_path), construct=lambda b: construct) is None
    assert "not an SDXL base" in _refused(state, caplog)


def test_the_hosts_own_refiner_is_replaced(tmp_path, fresh_cache) -> None:
    save_checkpoint(tmp_path / "refiner.safetensors", TinyUNet(adm=2560, context=1280))
    state, _ = make_state(tmp_path)
    state.p.refiner_checkpoint_info = object()
    assert refiner_swap.prepare_refiner(state, resolve=resolver(tmp_path), construct=lambda b: construct) is not None
    assert state.p.refiner_checkpoint_info is None
    assert "host refiner replaced" in state.p.extra_generation_params["Fooocus note"]


def test_header_classification_reads_no_tensor(tmp_path, monkeypatch) -> None:
    save_checkpoint(tmp_path / "r.safetensors", TinyUNet(adm=2560, context=1280))
    import safetensors

    monkeypatch.setattr(safetensors, "safe_open", lambda *a, **k: pytest.fail("tensors opened"))
    assert unet_file.inspect_checkpoint(tmp_path / "r.safetensors") == "sdxl-refiner"


def test_a_refiner_built_on_the_meta_device_gets_the_files_weights_in_the_bases_dtype(tmp_path, fresh_cache) -> None:
    """The hosts' constructors build the refiner on the "meta" device (no memory, no random init) from
    the header's shapes; the weights are then streamed in, converted to the base's dtype."""
    torch.manual_seed(2)
    saved = save_checkpoint(tmp_path / "refiner.safetensors", TinyUNet(adm=2560, context=1280))
    state, base = make_state(tmp_path)
    base.to(torch.float64)
    shapes_seen = []

    def construct_on_meta(config, shapes):
        shapes_seen.append(shapes)
        with torch.device("meta"):
            return construct(config)

    swap = refiner_swap.prepare_refiner(state, resolve=resolver(tmp_path), construct=lambda base: construct_on_meta)
    assert swap is not None, state.p.extra_generation_params
    assert all(t.is_meta for t in shapes_seen[0].values())  # the constructor read no weight
    for key, value in swap.unet.state_dict().items():
        assert not value.is_meta and value.dtype == torch.float64
        assert torch.equal(value, saved[f"model.diffusion_model.{key}"].to(torch.float64))


def test_a_file_with_other_shapes_is_refused_naming_the_tensor(tmp_path, fresh_cache, caplog) -> None:
    save_checkpoint(tmp_path / "second.safetensors", TinyUNet(channels=16))  # an SDXL base type, other widths
    state, _base = make_state(tmp_path, "second.safetensors")
    assert refiner_swap.prepare_refiner(state, resolve=resolver(tmp_path), construct=lambda base: None) is None
    note = _refused(state, caplog)
    assert "does not fit this architecture" in note and "size mismatch for" in note


def test_refiner_config_is_sd_xl_refiner_yaml_network_config(tmp_path) -> None:
    """The arguments A1111's `sgm` UNetModel gets for an SDXL refiner: sd_xl_refiner.yaml's network_config
    (sgm refuses a context_dim without use_spatial_transformer), channel counts read from the file."""
    saved = save_checkpoint(tmp_path / "refiner.safetensors", TinyUNet(adm=2560, context=1280, channels=8), extra=False)
    shapes = unet_file.unet_shape_state(tmp_path / "refiner.safetensors")
    assert set(shapes) == {k.removeprefix("model.diffusion_model.") for k in saved}
    config = refiner_swap.sdxl_refiner_config(shapes)
    assert config == {
        "adm_in_channels": 2560, "num_classes": "sequential", "use_checkpoint": False, "in_channels": 4, "out_channels": 4,
        "model_channels": 8, "attention_resolutions": [4, 2], "num_res_blocks": 2, "channel_mult": [1, 2, 4, 4],
        "num_head_channels": 64, "use_spatial_transformer": True, "use_linear_in_transformer": True,
        "transformer_depth": 4, "context_dim": 1280, "legacy": False,
    }


class LazyLinear(nn.Module):
    """Like Forge main's operations: a placeholder until `load_state_dict` brings the weights."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.empty(1))
        self.weight = None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        if prefix + "weight" in state_dict:
            self.weight = nn.Parameter(state_dict[prefix + "weight"].to(self.dummy))
        del self.dummy


def test_layers_that_create_their_weights_while_loading_get_the_files_tensors(tmp_path) -> None:
    torch.manual_seed(3)
    weight = torch.randn(3, 5)
    save_file({"model.diffusion_model.proj.weight": weight, "model.diffusion_model.out.weight": torch.ones(2, 2)},
              str(tmp_path / "lazy.safetensors"))
    module = nn.Module()
    module.proj = LazyLinear()
    module.out = nn.Linear(2, 2, bias=False)
    unet_file.load_unet_into(module, tmp_path / "lazy.safetensors")
    assert torch.equal(module.proj.weight, weight) and torch.equal(module.out.weight, torch.ones(2, 2))
    other = nn.Module()
    other.proj = nn.Linear(5, 3, bias=False)
    with pytest.raises(unet_file.RefinerFileError, match="does not fit this architecture"):
        unet_file.load_unet_into(other, tmp_path / "lazy.safetensors")  # an extra tensor: refused
