"""Match Fooocus: compute what Fooocus computes where the hosts differ (prompt encoding, noise).

Pure: torch and strings only. `prompt` holds Fooocus's tokenizer rules, emphasis and weighted
encoding; `noise` the initial noise and the per-image Brownian tree; `syntax` says which prompts
need the host's own encoder. The host glue lives in `lib_fooocus.hosts.match_encoding`.
"""
