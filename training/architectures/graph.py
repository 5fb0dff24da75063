"""Message-passing graph network on the pixel graph (lecture §3.9.2, Battaglia et al. 2018).

Every pixel is a node; edges join 4-neighbours in both directions. One graph block is PyG's
:class:`torch_geometric.nn.MetaLayer` composed of three MLPs:

- edge update   e'_k = f^e(e_k, v_s(k), v_r(k), u)          (sender, receiver, edge, global)
- node update   v'_i = f^v(ρ^{e→v}({e'_k : r(k) = i}), v_i, u)  (aggregated incoming edges)
- global update u'   = f^u(ρ^{e→u}(e'), ρ^{v→u}(v'), u)    (aggregated edges and nodes)

Shapes, with B graphs in the batch: node features ``x`` [B·1024, F_x], edge features
``edge_attr`` [B·E, F_e] (E = 3968 directed edges per 32×32 grid), globals ``u`` [B, F_u],
``edge_index`` [2, B·E], node ``batch`` [B·1024]. All graphs share the grid topology, so the
batched ``edge_index``/``batch`` are built once per (B, device) and cached.
The global attribute carries information across the whole specimen in one step, which the
local 4-neighbour messages alone would need 32+ blocks for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch_geometric.nn import MetaLayer
from torch_geometric.utils import scatter

from microstrain.conventions import GRID, N_STRAIN
from training.architectures.layers import mlp


def grid_graph(size: int = GRID) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pixel graph of one size×size image in row-major node order.

    Returns ``edge_index`` [2, E] (row 0 senders, row 1 receivers; both directions),
    ``edge_attr`` [E, 3] = (Δx, Δy, length) in units of the pixel pitch, with y pointing up as in
    the image convention (row 0 = top), and node coordinates ``pos`` [size², 2] in [0, 1].
    """
    idx = torch.arange(size * size).reshape(size, size)
    right = torch.stack([idx[:, :-1].reshape(-1), idx[:, 1:].reshape(-1)])  # → +x
    down = torch.stack([idx[:-1, :].reshape(-1), idx[1:, :].reshape(-1)])  # → −y
    edge_index = torch.cat([right, right.flip(0), down, down.flip(0)], dim=1)  # [2, E]
    n_h, n_v = right.shape[1], down.shape[1]
    unit = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
    delta = torch.repeat_interleave(unit, torch.tensor([n_h, n_h, n_v, n_v]), dim=0)  # [E, 2]
    edge_attr = torch.cat([delta, delta.norm(dim=1, keepdim=True)], dim=1)  # [E, 3]
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    pos = torch.stack([(cols.reshape(-1) + 0.5) / size, 1 - (rows.reshape(-1) + 0.5) / size], 1)
    return edge_index, edge_attr, pos


class EdgeModel(nn.Module):
    """f^e: [E, F_e] ⊕ [E, F_x] (sender) ⊕ [E, F_x] (receiver) ⊕ [E, F_u] → [E, F_e]."""

    def __init__(self, f_x: int, f_e: int, f_u: int, hidden: int) -> None:
        super().__init__()
        self.net = mlp(2 * f_x + f_e + f_u, f_e, [hidden], "silu")

    def forward(self, src, dst, edge_attr, u, edge_batch):  # type: ignore[no-untyped-def]
        return self.net(torch.cat([src, dst, edge_attr, u[edge_batch]], dim=1))


class NodeModel(nn.Module):
    """f^v: sum of incoming e' [N, F_e] ⊕ v [N, F_x] ⊕ u [N, F_u] → [N, F_x]."""

    def __init__(self, f_x: int, f_e: int, f_u: int, hidden: int) -> None:
        super().__init__()
        self.net = mlp(f_x + f_e + f_u, f_x, [hidden], "silu")

    def forward(self, x, edge_index, edge_attr, u, batch):  # type: ignore[no-untyped-def]
        incoming = scatter(edge_attr, edge_index[1], dim=0, dim_size=x.shape[0], reduce="sum")
        return self.net(torch.cat([incoming, x, u[batch]], dim=1))


class GlobalModel(nn.Module):
    """f^u: mean e' per graph [B, F_e] ⊕ mean v' per graph [B, F_x] ⊕ u [B, F_u] → [B, F_u]."""

    def __init__(self, f_x: int, f_e: int, f_u: int, hidden: int) -> None:
        super().__init__()
        self.net = mlp(f_e + f_x + f_u, f_u, [hidden], "silu")

    def forward(self, x, edge_index, edge_attr, u, batch):  # type: ignore[no-untyped-def]
        n_graphs = u.shape[0]
        edge_mean = scatter(edge_attr, batch[edge_index[0]], 0, dim_size=n_graphs, reduce="mean")
        node_mean = scatter(x, batch, dim=0, dim_size=n_graphs, reduce="mean")
        return self.net(torch.cat([edge_mean, node_mean, u], dim=1))


def graph_block(f_x: int, f_e: int, f_u: int, hidden: int) -> MetaLayer:
    return MetaLayer(
        EdgeModel(f_x, f_e, f_u, hidden),
        NodeModel(f_x, f_e, f_u, hidden),
        GlobalModel(f_x, f_e, f_u, hidden),
    )


@dataclass(frozen=True)
class GraphStrainConfig:
    node_features: int = 32  # F_x
    edge_features: int = 16  # F_e
    global_features: int = 16  # F_u
    hidden: int = 64  # width of the single hidden layer of each f^e, f^v, f^u
    blocks: int = 6  # graph blocks (message-passing steps), weights not shared


class GraphStrain(nn.Module):
    """Encode → ``blocks`` residual MetaLayer blocks → decode: [N, 1, 32, 32] → [N, 3, 32, 32].

    The decoder reads each node's features with its graph's global attribute.

    Node inputs: modulus and pixel-centre coordinates; edge inputs: (Δx, Δy, length);
    the global attribute starts as the image mean modulus.
    """

    edge_index_one: torch.Tensor  # [2, E] one grid's topology (buffer)
    edge_attr_one: torch.Tensor  # [E, 3]
    pos: torch.Tensor  # [1024, 2]

    def __init__(self, config: GraphStrainConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or GraphStrainConfig()
        edge_index, edge_attr, pos = grid_graph()
        self.register_buffer("edge_index_one", edge_index, persistent=False)
        self.register_buffer("edge_attr_one", edge_attr, persistent=False)
        self.register_buffer("pos", pos, persistent=False)
        self.node_encoder = mlp(3, c.node_features, [c.hidden], "silu")
        self.edge_encoder = mlp(3, c.edge_features, [c.hidden], "silu")
        self.global_encoder = mlp(1, c.global_features, [c.hidden], "silu")
        f = (c.node_features, c.edge_features, c.global_features, c.hidden)
        self.blocks = nn.ModuleList(graph_block(*f) for _ in range(c.blocks))
        self.decoder = mlp(c.node_features + c.global_features, N_STRAIN, [c.hidden], "silu")
        self._batched: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def batched_topology(self, n_graphs: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``edge_index`` [2, B·E] with node offsets and node ``batch`` [B·1024], cached."""
        key = (n_graphs, self.edge_index_one.device)
        if key not in self._batched:
            n_nodes = GRID * GRID
            offsets = torch.arange(n_graphs, device=key[1]) * n_nodes  # [B]
            edge_index = (self.edge_index_one.unsqueeze(1) + offsets.view(1, -1, 1)).reshape(2, -1)
            batch = torch.arange(n_graphs, device=key[1]).repeat_interleave(n_nodes)
            self._batched[key] = (edge_index, batch)
        return self._batched[key]

    def process(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor,
        u: torch.Tensor,
        batch: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The residual graph blocks on encoded features (any graph, any node order)."""
        for block in self.blocks:
            dx, de, du = block(x, edge_index, edge_attr, u, batch)
            x, edge_attr, u = x + dx, edge_attr + de, u + du
        return x, edge_attr, u

    def forward(self, youngs_modulus: torch.Tensor) -> torch.Tensor:
        n = youngs_modulus.shape[0]
        edge_index, batch = self.batched_topology(n)
        modulus = youngs_modulus.reshape(n * GRID * GRID, 1)  # [B·1024, 1], row-major like grid
        node_in = torch.cat([modulus, self.pos.repeat(n, 1)], dim=1)  # [B·1024, 3]
        x = self.node_encoder(node_in)  # [B·1024, F_x]
        edge_attr = self.edge_encoder(self.edge_attr_one.repeat(n, 1))  # [B·E, F_e]
        u = self.global_encoder(youngs_modulus.mean(dim=(1, 2, 3)).unsqueeze(1))  # [B, F_u]
        x, _, u = self.process(x, edge_index, edge_attr, u, batch)
        out = self.decoder(torch.cat([x, u[batch]], dim=1))  # [B·1024, 3]
        return out.reshape(n, GRID, GRID, N_STRAIN).permute(0, 3, 1, 2)  # [N, 3, 32, 32]


def build_gnn_strain(**kwargs: int) -> GraphStrain:
    """Registry builder for ``gnn-strain``; keyword overrides of :class:`GraphStrainConfig`."""
    return GraphStrain(GraphStrainConfig(**kwargs))
