"""Fooocus-format styles: `library` (loading and Fooocus's rules), `importer` (Fooocus's own styles and
A1111 `styles.csv`), `assembly` (the final prompts: BREAK chunks, expansion last, extra-network tags)."""
