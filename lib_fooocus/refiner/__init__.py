"""The refiner's UNet on disk: reading only its `model.diffusion_model.*` tensors from a safetensors
checkpoint, recognising its architecture, and a cache keyed by file path + size + mtime.

Host-free: building the host's own UNet class from the tensors is done by `lib_fooocus.hosts`.
"""
