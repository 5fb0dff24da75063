"""The baseline networks: capacity counts, strain shapes, graph-block permutation invariance."""

from __future__ import annotations

import pytest
import torch

from microstrain.conventions import GRID, N_STRAIN
from training.architectures import REGISTRY
from training.architectures.graph import GraphStrain, GraphStrainConfig, grid_graph
from training.architectures.layers import mlp, parameter_count
from training.baselines.sine import capacity_table
from training.baselines.strain import QUICK

# the lecture's capacity slide: (hidden layers, neurons) -> parameters, for 2 inputs
LECTURE_CAPACITY = {
    (2, 300): 91_501,
    (5, 150): 91_201,
    (2, 100): 10_501,
    (5, 100): 40_801,
    (10, 100): 91_301,
    (5, 800): 2_566_401,
}


def test_capacity_table_matches_lecture() -> None:
    rows = capacity_table()
    assert {(r["layers"], r["neurons"]): r["parameters"] for r in rows} == LECTURE_CAPACITY


def test_sine_network_has_lecture_architecture() -> None:
    net = mlp(1, 1, [50, 50], "tanh")
    assert parameter_count(net) == (1 * 50 + 50) + (50 * 50 + 50) + (50 + 1)
    assert [type(m).__name__ for m in net] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]


# the lecture baselines at the small settings `microstrain baselines strain --quick` uses (the
# CNN candidates carry BatchNorm, so their train-mode output depends on the batch)
SMALL = {name: kwargs for name, kwargs in QUICK.items() if not name.startswith("course-")}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_strain_baseline_shapes_and_gradients(name: str) -> None:
    torch.manual_seed(0)
    net = REGISTRY[name](**SMALL[name])
    x = torch.randn(3, 1, GRID, GRID)
    y = net(x)
    assert y.shape == (3, N_STRAIN, GRID, GRID)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())
    # samples are independent: changing one input leaves the other outputs unchanged
    x2 = x.clone()
    x2[0] += 1.0
    assert torch.allclose(net(x2)[1:], y[1:], atol=1e-5)


def test_rnn_reads_columns_along_x() -> None:
    """Columns are the sequence: a change in one column reaches its neighbours on both sides
    (bidirectional recurrence) but the output keeps the column layout."""
    torch.manual_seed(0)
    net = REGISTRY["rnn-strain"](hidden=8, layers=1)
    x = torch.randn(1, 1, GRID, GRID)
    x2 = x.clone()
    x2[..., 5] += 1.0  # column 5 (x ≈ 0.17)
    change = (net(x2) - net(x)).abs().amax(dim=(0, 1, 2))  # per output column [32]
    assert change[4] > 1e-4 and change[6] > 1e-4  # both directions carry it
    assert change[5] == change.max()


def test_grid_graph_topology() -> None:
    edge_index, edge_attr, pos = grid_graph(4)
    assert edge_index.shape == (2, 2 * 2 * 4 * 3)
    assert edge_attr.shape == (edge_index.shape[1], 3)
    # every directed edge has its reverse, and joins 4-neighbours
    pairs = set(map(tuple, edge_index.T.tolist()))
    assert all((r, s) in pairs for s, r in pairs)
    d = (pos[edge_index[1]] - pos[edge_index[0]]) * 4
    assert torch.allclose(d, edge_attr[:, :2])  # Δx, Δy in pixel units, y up
    assert pos[0].tolist() == [0.125, 0.875]  # row 0 is the top


def test_graph_block_is_permutation_equivariant() -> None:
    """Permuting nodes and edges consistently permutes node/edge outputs; globals unchanged."""
    torch.manual_seed(0)
    cfg = GraphStrainConfig(
        node_features=6, edge_features=5, global_features=4, hidden=12, blocks=2
    )
    net = GraphStrain(cfg).eval()
    n_graphs = 2
    edge_index, batch = net.batched_topology(n_graphs)
    n_nodes, n_edges = batch.numel(), edge_index.shape[1]
    x = torch.randn(n_nodes, cfg.node_features)
    e = torch.randn(n_edges, cfg.edge_features)
    u = torch.randn(n_graphs, cfg.global_features)
    out = net.process(x, edge_index, e, u, batch)

    node_perm = torch.randperm(n_nodes)  # new node k is old node node_perm[k]
    inverse = torch.empty_like(node_perm)
    inverse[node_perm] = torch.arange(n_nodes)
    edge_perm = torch.randperm(n_edges)
    perm_edge_index = inverse[edge_index[:, edge_perm]]
    x_p, e_p, u_p = net.process(x[node_perm], perm_edge_index, e[edge_perm], u, batch[node_perm])

    assert torch.allclose(x_p, out[0][node_perm], atol=1e-5)
    assert torch.allclose(e_p, out[1][edge_perm], atol=1e-5)
    assert torch.allclose(u_p, out[2], atol=1e-5)


def test_registry_import_does_not_load_torch_geometric() -> None:
    """The baseline builders load lazily: importing the registry (as training and export do)
    must not pull in torch_geometric; building the graph network does. Fresh interpreter, since
    this test module itself imports the graph network."""
    import subprocess
    import sys

    code = (
        "import sys, training.architectures as a;"
        "before = 'torch_geometric' in sys.modules;"
        "a.build('gnn-strain', node_features=4, edge_features=2, global_features=2, hidden=4,"
        " blocks=1);"
        "print(before, 'torch_geometric' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
