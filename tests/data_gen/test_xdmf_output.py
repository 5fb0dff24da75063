"""`microstrain solve --boundary periodic --xdmf DIR`: the three unit cases' full-resolution
fields, read back from the HDF5 file the XDMF file points into (real solves, k = 1 or 2)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from support.cli import assert_one_error_line, invoke
from support.materials import EPOXY, GLASS

from data_gen.elasticity import affine_displacement, unit_macro_strains
from data_gen.solver import SolverConfig, StrainSolver
from data_gen.xdmf_output import (
    PERIODIC_SCALARS,
    PERIODIC_VECTORS,
    XDMF_NAME,
    FieldWriter,
    case_name,
)
from microstrain.conventions import GRID, PERIODIC_CASES

UBAR = 0.1
K = 2
PHASES = ("--fiber", "72000,0.22", "--matrix", "3500,0.35")


def masks(n: int) -> np.ndarray:
    return (np.random.default_rng(3).random((n, GRID, GRID)) < 0.4).astype(np.uint8)


@pytest.fixture(scope="module")
def solved(tmp_path_factory) -> Path:
    """Two glass/epoxy cells in plane strain at k = 2, with their XDMF fields in ``fields/``."""
    directory = tmp_path_factory.mktemp("xdmf")
    np.save(directory / "m.npy", masks(2))
    result = invoke("solve", directory / "m.npy", "-o", directory / "out.h5", "--boundary",
                    "periodic", "--k", str(K), "--plane", "strain", *PHASES, "--xdmf",
                    directory / "fields")  # fmt: skip
    assert result.exit_code == 0, result.output
    return directory


def read_fields(directory: Path) -> tuple[dict[str, list[np.ndarray]], np.ndarray, np.ndarray]:
    """{name: [values of sample 0, 1, ...]}, node coordinates [n_nodes, 2], cells [n_cells, 4].

    Values per sample: [n_cells] of a scalar (cell order of ``cells``), [n_nodes, 3] of a vector
    (2D vectors padded with a zero z).
    """
    with h5py.File(directory / "fields" / "fields.h5") as f:
        functions = {  # a scalar is stored [n_cells, 1]
            name: [group[t][()].squeeze(axis=-1 if group[t].shape[-1] == 1 else ()) for t in
                   sorted(group, key=float)]
            for name, group in f["Function"].items()
        }  # fmt: skip
        return functions, f["Mesh/mesh/geometry"][()], f["Mesh/mesh/topology"][()]


def test_periodic_xdmf_names_every_case_and_sample(solved):
    functions, _, _ = read_fields(solved)
    expected = {"youngs_modulus"} | {
        case_name(c, q) for c in PERIODIC_CASES for q in (*PERIODIC_VECTORS, *PERIODIC_SCALARS)
    }
    assert set(functions) == expected
    assert all(len(steps) == 2 for steps in functions.values())  # one time step per sample
    xdmf = (solved / "fields" / XDMF_NAME).read_text()
    for name in expected:
        assert f'Attribute Name="{name}"' in xdmf, name
    assert not [p for p in (solved / "fields").iterdir() if p.name.startswith(".")]


def test_periodic_xdmf_strain_and_stress_means_are_the_macro_load_and_c_eff(solved):
    """ũ is periodic and continuous, so ∫ ε(ũ) = ∮ ũ ⊗ n = 0 over the periodic cell, and a Q1
    element's centroid strain is its mean strain (elements of equal area): the written total
    strains average to Ē = ū e_j exactly, up to round-off (about 1e-18 here). Each element's
    stress is its phase's C times that strain and C_eff is the pixel-mean stress / ū, so the
    written stresses average to ū C_eff[:, j], again to round-off."""
    functions, xy, cells = read_fields(solved)
    with h5py.File(solved / "out.h5") as f:
        c_eff = f["C_eff"][()]  # [2, 3, 3] MPa, from the float64 fields
        strain = f["strain"][()]  # [2, 3 cases, 3, 32, 32] float32
    centre = xy[cells].mean(axis=1)  # [n_cells, 2]
    col = np.floor(centre[:, 0] * GRID).astype(int)
    row = np.floor((1 - centre[:, 1]) * GRID).astype(int)
    pixel = row * GRID + col  # [n_cells] SPEC §2 pixel of each element
    macro = unit_macro_strains(UBAR)  # [3 cases, 3]
    for i in range(2):
        E = functions["youngs_modulus"][i]  # [n_cells] MPa
        assert set(np.unique(E)) == {EPOXY.youngs_modulus, GLASS.youngs_modulus}
        for j, case in enumerate(PERIODIC_CASES):
            eps, sigma = (
                np.stack([functions[case_name(case, q)][i] for q in names])  # [3, n_cells]
                for names in (PERIODIC_SCALARS[:3], PERIODIC_SCALARS[3:6])
            )
            np.testing.assert_allclose(eps.mean(axis=1), macro[j], rtol=0, atol=1e-12)
            mean_stress = UBAR * c_eff[i, :, j]  # MPa; the shear-normal coupling may be ~0
            atol = 1e-10 * np.abs(mean_stress).max()
            np.testing.assert_allclose(sigma.mean(axis=1), mean_stress, rtol=1e-10, atol=atol)
            assert np.all(functions[case_name(case, "von_mises")][i] > 0)
            # the pixel strain of the -o file is the mean of its k x k element strains
            pixel_mean = np.stack([np.bincount(pixel, e, GRID * GRID) / K**2 for e in eps])
            np.testing.assert_allclose(
                pixel_mean.reshape(3, GRID, GRID), strain[i, j], rtol=1e-5, atol=1e-7
            )


def test_periodic_xdmf_displacement_is_affine_plus_a_periodic_fluctuation(solved):
    functions, xy, _ = read_fields(solved)
    n = GRID * K
    grid = np.rint(xy * n).astype(int)  # node (x, y) on the n x n element grid
    index = {tuple(g): a for a, g in enumerate(grid)}
    left = np.flatnonzero(grid[:, 0] == 0)
    right = np.array([index[(n, y)] for y in grid[left, 1]])
    bottom = np.flatnonzero(grid[:, 1] == 0)
    top = np.array([index[(x, n)] for x in grid[bottom, 0]])
    for j, case in enumerate(PERIODIC_CASES):
        for i in range(2):
            u = functions[case_name(case, "displacement")][i][:, :2]  # padded to 3 components
            fluctuation = functions[case_name(case, "fluctuation")][i][:, :2]
            affine = affine_displacement(xy.T, unit_macro_strains(UBAR)[j]).T  # [n_nodes, 2]
            np.testing.assert_allclose(u - fluctuation, affine, rtol=0, atol=1e-14)
            np.testing.assert_allclose(fluctuation[left], fluctuation[right], rtol=0, atol=1e-14)
            np.testing.assert_allclose(fluctuation[bottom], fluctuation[top], rtol=0, atol=1e-14)
            assert np.abs(fluctuation).max() > 1e-4  # the fibers do perturb the affine field


def test_periodic_xdmf_into_a_file_is_one_error_line_and_writes_nothing(tmp_path):
    np.save(tmp_path / "m.npy", masks(1))
    (tmp_path / "taken").write_text("not a directory")
    result = invoke("solve", tmp_path / "m.npy", "-o", tmp_path / "out.h5", "--boundary",
                    "periodic", "--mode", "pixel", "--xdmf", tmp_path / "taken")  # fmt: skip
    assert_one_error_line(result, "cannot write XDMF output to")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npy", "taken"]


def test_periodic_xdmf_interrupted_leaves_no_fields_xdmf(tmp_path):
    solver = StrainSolver(
        SolverConfig(mode="pixel", boundary="periodic", fiber=GLASS, matrix=EPOXY)
    )
    E = np.where(masks(1)[0] > 0, GLASS.youngs_modulus, EPOXY.youngs_modulus)
    with pytest.raises(KeyboardInterrupt), FieldWriter(tmp_path / "fields", solver) as writer:
        solver.solve(E)
        writer.write_last(E)
        raise KeyboardInterrupt  # as Ctrl-C between two samples
    assert list((tmp_path / "fields").iterdir()) == []
