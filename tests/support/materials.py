"""The user-material pair of the tests: glass fiber in epoxy (E in MPa, ν).

Both moduli and the matrix's Poisson ratio differ from the lecture's pair
(:data:`microstrain.conventions.FIBER`, :data:`~microstrain.conventions.MATRIX`), so a code path
that quietly used the lecture's phases instead of the ones it was given shows in the numbers.
"""

from microstrain.conventions import Material

GLASS = Material("fiber", 72_000.0, 0.22)
EPOXY = Material("matrix", 3_500.0, 0.35)
