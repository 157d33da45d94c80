"""Host-free core of sd-webui-fooocus.

Nothing in this package imports A1111 or Forge modules. Heavy dependencies (transformers,
huggingface_hub, fastapi, gradio) are imported inside the functions that need them.
"""

__version__ = "0.1.0"
