"""`python -m lib_fooocus <command>`: one module per command (`expansion`, `styles`), each with
`add_arguments(parser)` and `run(args) -> int`."""
