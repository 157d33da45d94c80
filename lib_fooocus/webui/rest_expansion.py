"""`POST /fooocus/v1/expand` {"prompt": str, "seed": int} -> {"expansion": str}.

The prompt is expanded from `expansion_source(prompt)`, as in generation and the preview. The route
waits at most `REST_WAIT_SECONDS` for the model: while a download or load is still running it answers
503 with `Retry-After` (the download goes on in the background), never holding a lock meanwhile.
The body is parsed by hand (no pydantic model), so the route behaves the same under fastapi 0.94 with
pydantic 1 (A1111) and fastapi 0.104 with pydantic 2 (Forge).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from lib_fooocus.expansion.files import ExpansionUnavailableError
from lib_fooocus.expansion.service import ExpansionBusyError
from lib_fooocus.text import expansion_source

log = logging.getLogger(__name__)

EXPAND_PATH = "/fooocus/v1/expand"
SEED_RANGE = (-(2**63), 2**63 - 1)
# GPT-2 reads at most 1,024 tokens, and the expansion only runs when the prompt leaves room to fill up
# to the next multiple of 75 (under 975 tokens). Counting tokens needs the tokenizer, so the route uses
# a cheap bound on UTF-8 bytes instead: English prompts take about 4 bytes per token, so 8 KiB is about
# twice the window. Longer prompts are refused (422); shorter ones that still do not fit come back
# unchanged, as in generation.
MAX_PROMPT_BYTES = 8192
REST_WAIT_SECONDS = 20.0
RETRY_AFTER_HEADER = "10"


class BodyError(ValueError):
    pass


def parse_expand_body(raw: bytes) -> tuple[str, int]:
    """(prompt, seed) of a request body, or `BodyError` saying what is wrong."""
    try:
        body = json.loads(raw.decode("utf-8") if raw else "")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        msg = f'the body must be a JSON object like {{"prompt": "a cat", "seed": 42}} ({error})'
        raise BodyError(msg) from error
    if not isinstance(body, dict):
        msg = 'the body must be a JSON object like {"prompt": "a cat", "seed": 42}'
        raise BodyError(msg)
    problems = []
    unknown = sorted(set(body) - {"prompt", "seed"})
    if unknown:
        problems.append(f"unknown field(s) {', '.join(unknown)}; only 'prompt' and 'seed' are accepted")
    prompt, seed = body.get("prompt"), body.get("seed")
    if not isinstance(prompt, str):
        problems.append("'prompt' must be a string" + (" (it is missing)" if prompt is None else ""))
    if isinstance(seed, bool) or not isinstance(seed, int):
        if isinstance(seed, float) and seed.is_integer():
            seed = int(seed)
        else:
            problems.append("'seed' must be an integer" + (" (it is missing)" if seed is None else ""))
    size = len(prompt.encode("utf-8", "surrogatepass")) if isinstance(prompt, str) else 0
    if size > MAX_PROMPT_BYTES:
        problems.append(f"'prompt' is {size} bytes (UTF-8); at most {MAX_PROMPT_BYTES} are accepted: the expansion "
                        "model (GPT-2) reads at most 1,024 tokens, about 4 bytes each")
    if isinstance(seed, int) and not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        problems.append(f"'seed' must be between {SEED_RANGE[0]} and {SEED_RANGE[1]}")
    if problems:
        raise BodyError("; ".join(problems))
    return prompt, seed


def register_expand_route(
    app: Any,
    get_service: Callable[[], Any],
    path: str = EXPAND_PATH,
    dependencies: Sequence[Any] = (),
    wait: float = REST_WAIT_SECONDS,
) -> None:
    """Add the route to a FastAPI app. `get_service()` returns the `ExpansionService` to use (called per
    request, so the host can swap settings). `dependencies`: the host's API auth (see `webui.host_auth`);
    `wait` bounds the wait for a model being prepared."""
    from fastapi import Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse

    async def expand_route(request: Request):
        try:
            prompt, seed = parse_expand_body(await request.body())
        except BodyError as error:
            return JSONResponse(status_code=422, content={"detail": f"Invalid expand request: {error}"})
        service = await run_in_threadpool(get_service)
        try:
            expansion = await run_in_threadpool(
                lambda: service.expand(expansion_source(prompt), seed, wait=wait)
            )
        except ExpansionBusyError as error:
            return JSONResponse(
                status_code=503, content={"detail": str(error)}, headers={"Retry-After": RETRY_AFTER_HEADER}
            )
        except ExpansionUnavailableError as error:
            return JSONResponse(status_code=503, content={"detail": str(error)})
        finally:
            await run_in_threadpool(service.finish_generation)
        return {"expansion": expansion}

    # This module's annotations are strings (`from __future__ import annotations`) and `Request` is local
    # here, so FastAPI could not resolve it: hand it the class itself.
    expand_route.__annotations__ = {"request": Request}
    app.add_api_route(
        path,
        expand_route,
        methods=["POST"],
        dependencies=list(dependencies),
        summary="Fooocus V2 prompt expansion",
        description='Body {"prompt": str, "seed": int}; returns {"expansion": str}.',
    )
