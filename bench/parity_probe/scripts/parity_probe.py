"""Parity probe: a tiny WebUI extension used only by bench/parity.py and tests/webui/test_parity.py.

When the environment variable FOOOCUS_PARITY_LATENT_DIR is set, it saves the sampler's output latent of
every generation (the `post_sample` hook, before VAE decoding) as `<dir>/last.safetensors` (key
`samples`, float32, first image of the batch), so a harness can compare latents with Fooocus's. It changes
nothing in the generation. Not part of the extension: it is linked into a host folder by the harness.
"""

import os

from modules import scripts


class FooocusParityProbe(scripts.Script):
    def title(self):
        return "Fooocus parity probe"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def post_sample(self, p, ps, *args):
        folder = os.environ.get("FOOOCUS_PARITY_LATENT_DIR", "").strip()
        if not folder:
            return
        from safetensors.torch import save_file

        samples = ps.samples[0:1].detach().float().cpu().contiguous()
        target = os.path.join(folder, "last.safetensors")
        save_file({"samples": samples}, target + ".tmp")
        os.replace(target + ".tmp", target)
