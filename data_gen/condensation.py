"""Fast path, part 2: static condensation of the pixel interiors onto the pixel skeleton.

Part of the fast path of :mod:`data_gen.solver` (the problem is stated in
:mod:`data_gen.elasticity`). ``tests/data_gen/test_solver_reference.py`` checks the whole path
against that textbook solve, strain to 1e-11 and nodal displacement (recovered interiors
included) to 1e-12; ``tests/data_gen/test_solver_condensation.py`` checks the super-elements below
against closed forms (affine patch test, rigid modes, scaling with E).

In refined mode every pixel is a k x k patch of Q1 elements. Its (k − 1)² interior nodes belong
to no other pixel and carry no load and no boundary condition, so they can be eliminated pixel by
pixel. A pixel is one of two phases, and at a fixed Poisson ratio the stiffness is proportional to
E (λ, μ and plane-stress λ* all scale with E), so the elimination is known in advance: for each
phase m, with the pixel stiffness K = λ̂_m A + μ̂_m B of E = 1 MPa split into boundary (b, the 4k
nodes on the pixel edges) and interior (i) dofs,

    super-element  Ŝ_m = K_bb − K_bi K_ii⁻¹ K_ib        [8k, 8k]
    recovery       u_i = R_m u_b,  R_m = −K_ii⁻¹ K_ib    [2(k−1)², 8k]
    pixel strain   ε_p = T_m u_b,  T_m = W_b + W_i R_m   [3, 8k]

where W [3, 2(k+1)²] is the pixel-mean centroid strain. A pixel of modulus E contributes E·Ŝ_m.
Per sample the global skeleton matrix (14 850 dofs at k = 4 instead of 33 282) is one sparse
mat-vec of the phase-split modulus vector θ = [E·fiber; E·matrix] (2·1024), and the strain is one
mat-vec that evaluates both phases' T followed by a per-pixel select. k = 1 has no interior nodes:
then Ŝ is the element matrix and the same code is the plain pixel-mode assembly.

The boundary condition only decides how the skeleton dofs become unknowns. Every skeleton dof d
has a known offset u_0(d) and at most one unknown w(d): u = u_0 + P w with P a 0/1 map.

- uniaxial (SPEC §1): u_0 is the prescribed displacement on the Dirichlet dofs (no unknown
  there), zero elsewhere; every other skeleton dof is its own unknown.
- periodic (SPEC §11): u_0 = Ē·x on every dof, one per load case (an affine field passes the
  patch test, so it loads no pixel interior and condensation is unchanged); each dof's unknown
  is that of its periodic master, and the node (0, 0) has none (ũ pinned there).

The skeleton system is P^T K P w = −P^T K u_0, linear in θ for both: values and right-hand sides
are mat-vecs of θ, one right-hand side per load case, all sharing one factorization.

All pixels of the uniform mesh are congruent, so one reference pixel is built from dolfinx's
element matrices (brought into a geometric vertex order); every cell is checked to agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from data_gen.assembly import (
    DOFS_PER_CELL,
    affine_dof_values,
    cell_pixels,
    centroid_strain_rows,
    coo_matrix,
    dirichlet_dofs,
    element_matrices,
    periodic_masters,
    unrolled_cell_dofs,
)
from data_gen.elasticity import unit_macro_strains
from microstrain.conventions import BOUNDARIES, GRID, N_STRAIN

N_PHASES = 2  # 0 = fiber, 1 = matrix: the order of θ and of the strain map's row blocks
_UNIFORMITY_TOL = 1e-10  # relative: cells of create_unit_square are congruent squares


@dataclass
class SuperElement:
    """The condensed pixel of one phase at E = 1 MPa (dof order: ``PixelLayout``)."""

    stiffness: np.ndarray  # float64 [n_b, n_b], MPa per MPa of E
    recovery: np.ndarray  # float64 [n_i, n_b]: interior displacement from boundary displacement
    strain: np.ndarray  # float64 [3, n_b]: pixel-mean (eps_xx, eps_yy, gamma_xy) from u_b


@dataclass
class CondensedOperators:
    """Everything a sample needs, on the skeleton unknowns (PETSc matrices on COMM_SELF).

    With P = n² pixels (n = grid) and C load cases (1 uniaxial, 3 periodic):
    stiffness_map [nnz, 2P]: θ -> CSR values of the skeleton K_ff = P^T K P (SPD);
    load_map [C·n_free, 2P]: θ -> b_f = −P^T K u_0 of each case, case after case;
    strain_map S [2·3·P, n_free] and strain_offsets [C, 2·3·P]: w -> pixel strain as if each
    pixel were fiber (first 3·P rows) or matrix (last 3·P rows).
    """

    boundary: str  # "uniaxial" or "periodic"
    grid: int  # pixels per side
    n_dofs: int  # all unrolled displacement dofs of the Q1 space
    free_dofs: np.ndarray  # int64 [n_free] unrolled dof of each unknown (its periodic master)
    unknown_of_dof: np.ndarray  # int64 [n_dofs] unknown of each dof, −1 where there is none
    offsets: np.ndarray  # float64 [C, n_dofs] u_0 of each case (prescribed or Ē·x)
    boundary_dofs: np.ndarray  # int64 [P, n_b] unrolled dofs of each pixel's boundary nodes
    interior_dofs: np.ndarray  # int64 [P, n_i] unrolled dofs of each pixel's interior nodes
    phases: tuple[SuperElement, SuperElement]  # fiber, matrix
    indptr: np.ndarray  # PETSc int [n_free + 1] CSR pattern of K_ff
    indices: np.ndarray  # PETSc int [nnz]
    stiffness_map: Any  # PETSc.Mat [nnz, 2P]
    load_map: Any  # PETSc.Mat [C·n_free, 2P]
    strain_map: Any  # PETSc.Mat [2·3·P, n_free]
    strain_offsets: np.ndarray  # float64 [C, 2·3·P]
    cell_pixel: np.ndarray  # int64 [n_cells] flat pixel index (row-major, row 0 = top) per cell

    @property
    def n_free(self) -> int:
        return int(self.free_dofs.size)

    @property
    def n_cases(self) -> int:
        return int(self.offsets.shape[0])

    def displacement(self, u_free: np.ndarray, fiber: np.ndarray, case: int = 0) -> np.ndarray:
        """Skeleton solution w [n_free] of ``case`` + fiber mask [P] -> all unrolled dofs [n_dofs].

        u = u_0 + P w on the skeleton; every pixel's interior recovered with its phase's R.
        """
        u = self.offsets[case].copy()
        has_unknown = self.unknown_of_dof >= 0
        u[has_unknown] += u_free[self.unknown_of_dof[has_unknown]]
        if self.interior_dofs.shape[1]:
            u_b = u[self.boundary_dofs]  # [P, n_b]
            fib, mat = (np.einsum("ib,pb->pi", ph.recovery, u_b) for ph in self.phases)
            u[self.interior_dofs] = np.where(np.asarray(fiber).ravel()[:, None], fib, mat)
        return u


@dataclass
class PixelLayout:
    """Canonical local numbering of a pixel: node (a, b), a, b in 0..k, is a + (k + 1) b."""

    k: int
    nodes: np.ndarray  # int64 [P, (k+1)^2] global node (dof block) of each local node
    boundary: np.ndarray  # int64 [n_b] local dofs (2 * local node + component) on pixel edges
    interior: np.ndarray  # int64 [n_i] the other local dofs

    @property
    def n_local_dofs(self) -> int:
        return 2 * (self.k + 1) ** 2

    def global_dofs(self, local: np.ndarray) -> np.ndarray:
        """Local dofs [m] -> unrolled global dofs of every pixel [P, m]."""
        return 2 * self.nodes[:, local // 2] + local % 2


def pixel_layout(node_coords: np.ndarray, k: int, grid: int = GRID) -> PixelLayout:
    """Local numbering of every pixel from the Q1 node coordinates [n_nodes, >=2] (unit square)."""
    n = grid * k
    gx = np.rint(node_coords[:, 0] * n).astype(np.int64)
    gy = np.rint(node_coords[:, 1] * n).astype(np.int64)
    node_at = np.full((n + 1, n + 1), -1, dtype=np.int64)
    node_at[gx, gy] = np.arange(node_coords.shape[0])
    if np.any(node_at < 0):
        raise RuntimeError("the Q1 nodes do not form the expected structured grid")
    b, a = np.divmod(np.arange((k + 1) ** 2), k + 1)  # local node l = a + (k + 1) b
    i, j = np.divmod(np.arange(grid * grid), grid)  # image row (0 = top) and column
    x0, y0 = j * k, (grid - 1 - i) * k  # grid index of the pixel's lower-left node
    nodes = node_at[x0[:, None] + a[None, :], y0[:, None] + b[None, :]]  # [P, (k+1)^2]
    on_edge = np.repeat((a == 0) | (a == k) | (b == 0) | (b == k), 2)  # per local dof
    return PixelLayout(
        k=k,
        nodes=nodes,
        boundary=np.flatnonzero(on_edge),
        interior=np.flatnonzero(~on_edge),
    )


def _canonical_cell_order(cell_dofs: np.ndarray, node_coords: np.ndarray, n: int) -> np.ndarray:
    """Per cell, the permutation of its 8 dofs into geometric order: int64 [n_cells, 8].

    Corner q = dx + 2 dy (dx, dy in {0, 1} relative to the lower-left vertex), dof 2 q + comp.
    """
    vertices = cell_dofs[:, 0::2] // 2  # [n_cells, 4]
    gx = np.rint(node_coords[vertices, 0] * n).astype(np.int64)
    gy = np.rint(node_coords[vertices, 1] * n).astype(np.int64)
    corner = (gx - gx.min(axis=1, keepdims=True)) + 2 * (gy - gy.min(axis=1, keepdims=True))
    vertex_of_corner = np.argsort(corner, axis=1)  # [n_cells, 4]: local vertex at corner q
    return (2 * vertex_of_corner[:, :, None] + np.arange(2)).reshape(-1, DOFS_PER_CELL)


def _reference_cell(per_cell: np.ndarray, name: str) -> np.ndarray:
    """The common value of a per-cell array [n_cells, ...]; refuses a non-uniform mesh."""
    ref = per_cell[0]
    scale = np.abs(ref).max()
    if np.abs(per_cell - ref).max() > _UNIFORMITY_TOL * scale:
        raise RuntimeError(f"cells differ in their {name}: pixel condensation needs a uniform mesh")
    return ref


def reference_pixel(
    V, k: int, grid: int = GRID
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel matrices from dolfinx's element matrices, in ``PixelLayout`` local dof order.

    Returns A, B [2(k+1)², 2(k+1)²] (λ- and μ-parts of the stiffness, K = λ A + μ B), W
    [3, 2(k+1)²] (pixel-mean centroid strain) and the cell -> pixel index [n_cells].
    """
    n = grid * k
    cell_dofs = unrolled_cell_dofs(V)  # [n_cells, 8]
    node_coords = V.tabulate_dof_coordinates()  # [n_nodes, 3]
    centroids = node_coords[cell_dofs[:, 0::2] // 2].mean(axis=1)  # [n_cells, 3]
    A, B = element_matrices(V, cell_dofs, centroids, n)  # [n_cells, 8, 8] each
    rows = centroid_strain_rows(V, cell_dofs, node_coords)  # [n_cells, 3, 8]
    order = _canonical_cell_order(cell_dofs, node_coords, n)  # [n_cells, 8]

    def reorder(m: np.ndarray) -> np.ndarray:  # [n_cells, r, 8] -> columns in canonical order
        return np.take_along_axis(m, order[:, None, :], axis=2)

    def reorder_both(m: np.ndarray) -> np.ndarray:  # [n_cells, 8, 8], rows and columns
        return reorder(reorder(m).transpose(0, 2, 1)).transpose(0, 2, 1)

    a_cell = _reference_cell(reorder_both(A), "λ-stiffness")
    b_cell = _reference_cell(reorder_both(B), "μ-stiffness")
    w_cell = _reference_cell(reorder(rows), "centroid strain")

    # Scatter the k² canonical cells of a pixel: cell (ca, cb) has corner q at node
    # (ca + q % 2) + (k + 1)(cb + q // 2).
    n_local = 2 * (k + 1) ** 2
    A_pix, B_pix, W_pix = (
        np.zeros((n_local, n_local)),
        np.zeros((n_local, n_local)),
        np.zeros((N_STRAIN, n_local)),
    )
    q = np.arange(4)
    for cb in range(k):
        for ca in range(k):
            node = (ca + q % 2) + (k + 1) * (cb + q // 2)  # [4]
            dofs = (2 * node[:, None] + np.arange(2)).ravel()  # [8] canonical cell dof order
            A_pix[np.ix_(dofs, dofs)] += a_cell
            B_pix[np.ix_(dofs, dofs)] += b_cell
            W_pix[:, dofs] += w_cell / k**2
    return A_pix, B_pix, W_pix, cell_pixels(centroids, grid)


def condense(K: np.ndarray, W: np.ndarray, boundary: np.ndarray, interior: np.ndarray):
    """Eliminate the interior dofs of one pixel matrix K [n, n] (strain rows W [3, n])."""
    K_bb = K[np.ix_(boundary, boundary)]
    if interior.size == 0:
        return SuperElement(K_bb, np.zeros((0, boundary.size)), W[:, boundary].copy())
    K_ib = K[np.ix_(interior, boundary)]
    recovery = -np.linalg.solve(K[np.ix_(interior, interior)], K_ib)  # [n_i, n_b]
    schur = K_bb + K_ib.T @ recovery
    return SuperElement(
        stiffness=0.5 * (schur + schur.T),  # symmetric to round-off; make it exact
        recovery=recovery,
        strain=W[:, boundary] + W[:, interior] @ recovery,
    )


def _unknowns(V, k: int, grid: int, boundary: str, applied_strain: float, boundary_dofs):
    """How skeleton dofs become unknowns (module docstring).

    Returns free_dofs [n_free], unknown_of_dof [n_dofs] (−1: none), offsets [C, n_dofs] and,
    uniaxial only, the Dirichlet dofs as a mask [n_dofs] (their values lift the right-hand side
    and the strain); a periodic load comes from Ē per pixel instead (:func:`_affine_load_map`).
    """
    n_dofs = V.dofmap.index_map.size_local * V.dofmap.index_map_bs
    skeleton = np.zeros(n_dofs, dtype=bool)
    skeleton[boundary_dofs] = True
    if boundary == "uniaxial":
        d_dofs, d_values = dirichlet_dofs(V, applied_strain)
        offsets = np.zeros((1, n_dofs))
        offsets[0, d_dofs] = d_values
        is_free = skeleton.copy()
        is_free[d_dofs] = False  # the skeleton minus the Dirichlet dofs (all on the domain edge)
        free_dofs = np.flatnonzero(is_free)
        unknown_of_dof = np.full(n_dofs, -1, dtype=np.int64)
        unknown_of_dof[free_dofs] = np.arange(free_dofs.size)
        return free_dofs, unknown_of_dof, offsets, unknown_of_dof < 0
    if boundary != "periodic":
        raise ValueError(f"boundary must be one of {BOUNDARIES}; got {boundary!r}")
    master = periodic_masters(V, grid * k)  # [n_dofs]
    xy = V.tabulate_dof_coordinates()[:, :2]
    pinned_node = int(np.argmin(np.abs(xy).sum(axis=1)))  # the node at (0, 0)
    is_free = np.zeros(n_dofs, dtype=bool)
    is_free[master[skeleton]] = True  # masters of the skeleton (a master is a skeleton dof) ...
    is_free[2 * pinned_node : 2 * pinned_node + 2] = False  # ... minus the pinned node
    free_dofs = np.flatnonzero(is_free)
    unknown_of_master = np.full(n_dofs, -1, dtype=np.int64)
    unknown_of_master[free_dofs] = np.arange(free_dofs.size)
    unknown_of_dof = np.where(skeleton, unknown_of_master[master], -1)
    offsets = np.stack([affine_dof_values(V, e) for e in unit_macro_strains(applied_strain)])
    return free_dofs, unknown_of_dof, offsets, None


def _affine_load_map(phases, offsets, boundary_dofs, unknown_of_dof, n_free: int) -> Any:
    """Periodic load map [C·n_free, 2P]: θ -> b = −P^T K u_Ē of every case, case after case.

    A pixel's super-element turns Ē·x into the same nodal forces wherever the pixel lies (a
    translation costs no energy), so each pixel adds E times its phase's forces: n_b entries per
    pixel, phase and case instead of the n_b² of K u_Ē.
    """
    n_pixels = boundary_dofs.shape[0]
    ref = boundary_dofs[0]  # [n_b] dofs of one pixel; its first two are one node's u_x, u_y
    local = offsets[:, ref] - offsets[:, ref[:2]][:, ref % 2]  # [C, n_b] Ē·(x − x_0)
    forces = np.einsum("mab,cb->mca", np.stack([ph.stiffness for ph in phases]), local)
    rows = unknown_of_dof[boundary_dofs]  # [P, n_b]
    keep = rows >= 0
    pixel = np.broadcast_to(np.arange(n_pixels)[:, None], rows.shape)[keep]
    n_cases = offsets.shape[0]
    row, col, val = [], [], []
    for case in range(n_cases):
        for m in range(N_PHASES):
            row.append(case * n_free + rows[keep])
            col.append(m * n_pixels + pixel)
            val.append(-np.broadcast_to(forces[m, case], rows.shape)[keep])
    return coo_matrix(
        (n_cases * n_free, N_PHASES * n_pixels),
        np.concatenate(row),
        np.concatenate(col),
        np.concatenate(val),
    )


def build_condensed_operators(
    V,
    k: int,
    unit_lame: np.ndarray,
    applied_strain: float,
    boundary: str = "uniaxial",
    grid: int = GRID,
) -> CondensedOperators:
    """All maps of the module docstring for the Q1 space ``V`` with k x k cells per pixel.

    unit_lame [2 phases (fiber, matrix), 2 (λ̂, μ̂)]: Lamé parameters per MPa of E (λ̂ is λ* in
    plane stress), so that the stiffness of a pixel of modulus E is E (λ̂ A + μ̂ B).
    boundary: "uniaxial" (SPEC §1) or "periodic" (SPEC §11); grid: pixels per side.
    """
    from petsc4py import PETSc

    n_pixels = grid * grid
    A, B, W, cell_pixel = reference_pixel(V, k, grid)
    layout = pixel_layout(V.tabulate_dof_coordinates(), k, grid)
    phases = tuple(
        condense(lam * A + mu * B, W, layout.boundary, layout.interior) for lam, mu in unit_lame
    )
    n_dofs = V.dofmap.index_map.size_local * V.dofmap.index_map_bs
    boundary_dofs = layout.global_dofs(layout.boundary)  # [P, n_b]
    interior_dofs = layout.global_dofs(layout.interior)  # [P, n_i]
    free_dofs, unknown_of_dof, offsets, loads = _unknowns(
        V, k, grid, boundary, applied_strain, boundary_dofs
    )
    n_free = free_dofs.size

    # Entry (p, r, s) of every pixel's super-element, flat [P * n_b²].
    n_b = layout.boundary.size
    r = np.repeat(boundary_dofs[:, :, None], n_b, axis=2).ravel()
    s = np.repeat(boundary_dofs[:, None, :], n_b, axis=1).ravel()
    pix = np.repeat(np.arange(n_pixels), n_b * n_b)
    vals = [np.broadcast_to(ph.stiffness, (n_pixels, n_b, n_b)).ravel() for ph in phases]
    fr, fs = unknown_of_dof[r], unknown_of_dof[s]
    theta_col = [pix, n_pixels + pix]  # θ = [E·fiber; E·matrix]

    ff = (fr >= 0) & (fs >= 0)  # P^T K P: entries of periodic images sum into their masters
    keys, pos = np.unique(fr[ff] * n_free + fs[ff], return_inverse=True)
    indptr = np.searchsorted(keys // n_free, np.arange(n_free + 1)).astype(PETSc.IntType)
    indices = (keys % n_free).astype(PETSc.IntType)
    stiffness_map = coo_matrix(
        (keys.size, N_PHASES * n_pixels),
        np.concatenate([pos, pos]),
        np.concatenate([c[ff] for c in theta_col]),
        np.concatenate([v[ff] for v in vals]),
    )

    n_cases = offsets.shape[0]
    if loads is not None:  # uniaxial
        fd = (fr >= 0) & loads[s]  # lifting b_f = −K_fD u_D, linear in θ too
        load_map = coo_matrix(
            (n_cases * n_free, N_PHASES * n_pixels),
            np.concatenate([case * n_free + fr[fd] for case in range(n_cases) for _ in vals]),
            np.concatenate([c[fd] for _ in range(n_cases) for c in theta_col]),
            np.concatenate([v[fd] * -offset[s[fd]] for offset in offsets for v in vals]),
        )
    else:
        load_map = _affine_load_map(phases, offsets, boundary_dofs, unknown_of_dof, n_free)

    # Strain rows (phase, channel, pixel) acting on the pixel's boundary dofs.
    row = (
        np.arange(N_PHASES)[:, None, None, None] * N_STRAIN * n_pixels
        + np.arange(N_STRAIN)[None, :, None, None] * n_pixels
        + np.arange(n_pixels)[None, None, :, None]
    )  # [2, 3, P, 1]
    shape = (N_PHASES, N_STRAIN, n_pixels, n_b)
    row = np.broadcast_to(row, shape).ravel()
    col = np.broadcast_to(boundary_dofs[None, None], shape).ravel()
    w = np.stack([np.broadcast_to(ph.strain[:, None, :], shape[1:]) for ph in phases]).ravel()
    free_col = unknown_of_dof[col]
    strain_map = coo_matrix(
        (N_PHASES * N_STRAIN * n_pixels, n_free),
        row[free_col >= 0],
        free_col[free_col >= 0],
        w[free_col >= 0],
    )
    if loads is not None:
        fixed = loads[col]
        strain_offsets = np.stack(
            [
                np.bincount(
                    row[fixed],
                    weights=w[fixed] * offset[col[fixed]],
                    minlength=N_PHASES * N_STRAIN * n_pixels,
                )
                for offset in offsets
            ]
        )
    else:  # the strain of Ē·x in either phase's pixel is Ē (patch test), exactly
        macro = unit_macro_strains(applied_strain)  # [C, 3]
        strain_offsets = np.tile(np.repeat(macro, n_pixels, axis=1), (1, N_PHASES))
    return CondensedOperators(
        boundary=boundary,
        grid=grid,
        n_dofs=n_dofs,
        free_dofs=free_dofs,
        unknown_of_dof=unknown_of_dof,
        offsets=offsets,
        boundary_dofs=boundary_dofs,
        interior_dofs=interior_dofs,
        phases=phases,  # type: ignore[arg-type]
        indptr=indptr,
        indices=indices,
        stiffness_map=stiffness_map,
        load_map=load_map,
        strain_map=strain_map,
        strain_offsets=strain_offsets,
        cell_pixel=cell_pixel,
    )
