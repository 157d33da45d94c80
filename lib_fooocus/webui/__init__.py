"""Host-side glue that is not sampling: the accordion UI, settings, HTTP API validation, infotext
paste, X/Y/Z axes, REST route registration and the per-generation prompt rewriting.

Every host module (`modules.*`) and every heavy package (gradio, fastapi) is imported inside the
functions that need it, so importing this package at WebUI start-up costs nothing and works
without a host (the tests run it against fake `modules.*`).
"""
