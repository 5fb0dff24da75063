"""microstrain: surrogate models for the strain field of fiber/matrix composites.

This package is the small shared core: conventions of SPEC §2/§4/§5 (`conventions`), input
validation for E maps and fiber masks (`fields`), the onnxruntime surrogate (`surrogate`) and the
`microstrain` command line (`cli`). It imports neither torch nor dolfinx.
"""

__version__ = "0.1.0"
