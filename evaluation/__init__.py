"""Judging exported models: the §9 measures on datasets (``evaluate``) and the breakeven report
(``tau``). Reads ``models/`` and SPEC §4 files; onnxruntime only (no torch, no dolfinx)."""
