"""Fooocus V2 prompt expansion: `engine` (the GPT-2 sampler, exact to Fooocus), `files` (the model
folder: what it must hold, downloading and converting it), `service` (lazy, thread-safe loading)."""
