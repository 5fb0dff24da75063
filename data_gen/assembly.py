"""Fast path, part 1: element matrices, strain rows, boundary conditions, read from dolfinx once.

Part of the fast path of :mod:`data_gen.solver`; the problem itself is stated in
:mod:`data_gen.elasticity`, and ``tests/data_gen/test_solver_reference.py`` checks the fast path
against it. The stiffness of 2D linear elasticity is linear in the per-cell Lamé parameters,

    K = Σ_c (λ_c A_c + μ_c B_c),   A_c = ∫_c div φ_i div φ_j,   B_c = ∫_c 2 ε(φ_i):ε(φ_j),

so the per-cell matrices A_c, B_c [8, 8] of the compiled UFL forms are all the solver needs from
dolfinx's assembler. They are read back from assemblies with a DG0 indicator of one of four cell
colours (cells of one colour share no vertex), so every assembled entry belongs to one cell.
Besides them: the centroid strain operator of each cell, the Dirichlet dofs of SPEC §1, the
periodic identification of SPEC §11, the cell -> pixel map and a COO -> PETSc helper.
:mod:`data_gen.condensation` combines them into the per-sample maps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from microstrain.conventions import GRID, N_STRAIN

DOFS_PER_CELL = 8  # Q1 vector element: 4 vertices x 2 components


def cell_pixels(centroids: np.ndarray, grid: int = GRID) -> np.ndarray:
    """Cell centroids [n_cells, >=2] in the unit square -> flat pixel index (SPEC §2) [n_cells].

    grid: pixels per side. Row i = 0 is the top (y = 1), column j = 0 the left edge.
    """
    j = np.clip(np.floor(centroids[:, 0] * grid), 0, grid - 1).astype(np.int64)
    i = np.clip(np.floor((1.0 - centroids[:, 1]) * grid), 0, grid - 1).astype(np.int64)
    return i * grid + j


def coo_matrix(shape: tuple[int, int], rows, cols, vals) -> Any:
    """Sparse PETSc AIJ matrix from COO triplets (duplicates summed) on COMM_SELF."""
    from petsc4py import PETSc

    mat = PETSc.Mat().create(comm=PETSc.COMM_SELF)
    mat.setSizes(shape)
    mat.setType(PETSc.Mat.Type.SEQAIJ)
    mat.setPreallocationCOO(rows.astype(PETSc.IntType), cols.astype(PETSc.IntType))
    mat.setValuesCOO(np.ascontiguousarray(vals, dtype=PETSc.ScalarType))  # type: ignore[arg-type]
    mat.assemble()
    return mat


def _blocked_csr_lookup(matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Values of a dolfinx ``la.MatrixCSR`` with 2x2 blocks at unrolled (rows, cols)."""
    bs = matrix.block_size
    indptr, indices = matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64)
    n_block_rows = indptr.size - 1
    n_block_cols = int(indices.max()) + 1
    block_row_of_entry = np.repeat(np.arange(n_block_rows), np.diff(indptr))
    keys = block_row_of_entry * n_block_cols + indices
    if np.any(np.diff(keys) <= 0):  # searchsorted needs sorted, unique column indices per row
        order = np.argsort(keys, kind="stable")
        keys, positions = keys[order], order
    else:
        positions = np.arange(keys.size)
    wanted = (rows // bs[0]) * n_block_cols + cols // bs[1]
    found = np.searchsorted(keys, wanted)
    if np.any(keys[np.minimum(found, keys.size - 1)] != wanted):
        raise RuntimeError("element matrix entry missing from the assembled sparsity pattern")
    block = positions[found]
    return matrix.data[block * bs[0] * bs[1] + (rows % bs[0]) * bs[1] + cols % bs[1]]


def element_matrices(V, cell_dofs: np.ndarray, centroids: np.ndarray, n_cells_per_side: int):
    """Per-cell element matrices (A_c, B_c), each [n_cells, 8, 8], read from dolfinx assemblies."""
    import dolfinx.fem
    import ufl

    msh = V.mesh
    Q = dolfinx.fem.functionspace(msh, ("DG", 0))
    indicator = dolfinx.fem.Function(Q)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)

    def eps(w):
        return ufl.sym(ufl.grad(w))

    forms = (
        dolfinx.fem.form(indicator * ufl.div(u) * ufl.div(v) * ufl.dx),
        dolfinx.fem.form(indicator * 2.0 * ufl.inner(eps(u), eps(v)) * ufl.dx),
    )
    # Cells of equal (ix mod 2, iy mod 2) share no vertex on the structured grid.
    ix = np.floor(centroids[:, 0] * n_cells_per_side).astype(np.int64)
    iy = np.floor(centroids[:, 1] * n_cells_per_side).astype(np.int64)
    colour = (ix % 2) + 2 * (iy % 2)
    n_cells = cell_dofs.shape[0]
    rows = np.repeat(cell_dofs[:, :, None], DOFS_PER_CELL, axis=2)  # [n_cells, 8, 8]
    cols = np.repeat(cell_dofs[:, None, :], DOFS_PER_CELL, axis=1)  # [n_cells, 8, 8]
    out = [np.zeros((n_cells, DOFS_PER_CELL, DOFS_PER_CELL)) for _ in forms]
    for c in range(4):
        cells = np.flatnonzero(colour == c)
        # DG0 dof i lives on cell i (one dof per cell, identity layout on COMM_SELF)
        indicator.x.array[:] = 0.0
        indicator.x.array[Q.dofmap.list[cells, 0]] = 1.0
        for form, target in zip(forms, out, strict=True):
            K = dolfinx.fem.assemble_matrix(form)
            target[cells] = _blocked_csr_lookup(
                K, rows[cells].ravel(), cols[cells].ravel()
            ).reshape(len(cells), DOFS_PER_CELL, DOFS_PER_CELL)
    return out[0], out[1]


def unrolled_cell_dofs(V) -> np.ndarray:
    """Unrolled dof indices (2 * vertex + component) of every cell: int64 [n_cells, 8]."""
    bs = V.dofmap.index_map_bs
    n_cells = V.mesh.topology.index_map(V.mesh.topology.dim).size_local
    blocks = V.dofmap.list[:n_cells].astype(np.int64)  # [n_cells, 4]
    return (blocks[:, :, None] * bs + np.arange(bs)).reshape(n_cells, -1)


def centroid_strain_rows(V, cell_dofs: np.ndarray, dof_coords: np.ndarray) -> np.ndarray:
    """Centroid strain operator of each cell: [n_cells, 3, 8] acting on the 8 cell dofs.

    Uses the isoparametric Q1 map: the Jacobian from the cell's dof coordinates.
    """
    ref = V.element.basix_element.tabulate(1, np.array([[0.5, 0.5]]))  # [3, 1, 4, 1]
    dphi_ref = ref[1:, 0, :, 0]  # [2 (d/dX, d/dY), 4]
    nodes = cell_dofs[:, 0::2] // 2  # [n_cells, 4] vertex (block) index
    x = dof_coords[nodes][:, :, :2]  # [n_cells, 4, 2]
    jac = np.einsum("cag,ra->cgr", x, dphi_ref)  # [n_cells, 2 (x,y), 2 (X,Y)]
    grad = np.einsum("crg,ra->cga", np.linalg.inv(jac), dphi_ref)  # [n_cells, 2 (x,y), 4]
    n_cells = cell_dofs.shape[0]
    rows = np.zeros((n_cells, N_STRAIN, DOFS_PER_CELL))
    rows[:, 0, 0::2] = grad[:, 0]  # eps_xx = d u_x / dx
    rows[:, 1, 1::2] = grad[:, 1]  # eps_yy = d u_y / dy
    rows[:, 2, 0::2] = grad[:, 1]  # gamma_xy = d u_x / dy + d u_y / dx
    rows[:, 2, 1::2] = grad[:, 0]
    return rows


def dirichlet_dofs(V, applied_strain: float) -> tuple[np.ndarray, np.ndarray]:
    """SPEC §1 rollers and prescribed displacement -> (unrolled dofs [n_D], values [n_D]).

    u_x = 0 on x = 0, u_y = 0 on y = 0, u_x = ū on x = 1 (the top edge is traction-free).
    """
    import dolfinx.fem
    import dolfinx.mesh

    msh = V.mesh
    fdim = msh.topology.dim - 1

    def edge_dofs(component: int, marker) -> np.ndarray:
        facets = dolfinx.mesh.locate_entities_boundary(msh, fdim, marker)
        return dolfinx.fem.locate_dofs_topological(V.sub(component), fdim, facets)

    left = edge_dofs(0, lambda x: np.isclose(x[0], 0.0))
    right = edge_dofs(0, lambda x: np.isclose(x[0], 1.0))
    bottom = edge_dofs(1, lambda x: np.isclose(x[1], 0.0))
    dofs = np.concatenate([left, bottom, right]).astype(np.int64)
    values = np.concatenate(
        [np.zeros(left.size + bottom.size), np.full(right.size, applied_strain)]
    )
    dofs, first = np.unique(dofs, return_index=True)
    return dofs, values[first]


def periodic_masters(V, n_cells_per_side: int) -> np.ndarray:
    """SPEC §11 identification: the master dof of every unrolled dof, int64 [n_dofs].

    Node (i, j) of the (n + 1)² grid is node (i mod n, j mod n): the right edge repeats the left,
    the top the bottom, the four corners are one node. Masters are their own master.
    """
    n = n_cells_per_side
    xy = V.tabulate_dof_coordinates()[:, :2]  # [n_nodes, 2], node = dof block
    grid_index = np.rint(xy * n).astype(np.int64)  # [n_nodes, 2]
    node_at = np.full((n + 1, n + 1), -1, dtype=np.int64)
    node_at[grid_index[:, 0], grid_index[:, 1]] = np.arange(xy.shape[0])
    master_node = node_at[grid_index[:, 0] % n, grid_index[:, 1] % n]  # [n_nodes]
    return (2 * master_node[:, None] + np.arange(2)).ravel()


def affine_dof_values(V, macro_strain: np.ndarray) -> np.ndarray:
    """u = Ē·x at every unrolled dof [n_dofs] for Ē = (eps_xx, eps_yy, gamma_xy).

    The symmetric gradient, as :func:`data_gen.elasticity.affine_displacement`.
    """
    from data_gen.elasticity import affine_displacement

    xy = V.tabulate_dof_coordinates()[:, :2]  # [n_nodes, 2]
    return affine_displacement(xy.T, macro_strain).T.ravel()  # node-major, component-minor
