"""Experiment ``sine``: a fully connected network approximating f(x) = sin(2πx) on [−1, 1].

Lecture §3.8 defaults: 2 hidden layers × 50 tanh neurons, 40 training and 40 validation samples
y = sin(2πx) + 0.1·U(−1, 1), the analytic function on a dense grid as test set, Adam with
lr 1e-3 for 10,000 epochs. Variants, each changing one thing against that baseline:

- gradient descent: full batch (40), mini batch (8), stochastic (1 sample per step);
- optimizer: Adam vs plain SGD, each at lr 1e-3 and 0.1 (the lecture's "Adam at α = 0.1");
- regularization: L2 penalty λ Σ‖W‖² on the weights (not the biases) vs none;
- Sobolev training: loss on values and on derivatives dy/dx, the network's derivative taken by
  autograd (:func:`sobolev_loss`); the derivative targets are the analytic 2π cos(2πx) at the
  training inputs (noise-free: the lecture gives no noise model for derivatives).

The report also gives the parameter counts of the lecture's capacity examples
(:func:`capacity_table`), computed by building each MLP.

The training loop is written out (not a Lightning Trainer) because the loop — which samples a
step sees and which optimizer takes it — is exactly what the experiment varies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.architectures.layers import mlp, parameter_count
from training.baselines.report import markdown_table, save_figure, write_report

# The lecture's capacity slide (2 inputs, 1 output): (hidden layers, neurons per layer).
CAPACITY_EXAMPLES: tuple[tuple[int, int], ...] = (
    (2, 300),
    (5, 150),
    (2, 100),
    (5, 100),
    (10, 100),
    (5, 800),
)


@dataclass(frozen=True)
class SineConfig:
    n_train: int = 40
    n_val: int = 40
    noise: float = 0.1  # amplitude of the uniform noise on y
    n_test: int = 1001  # analytic test points on [−1, 1]
    hidden: tuple[int, ...] = (50, 50)
    act: str = "tanh"
    epochs: int = 10_000
    lr: float = 1e-3
    mini_batch: int = 8
    # stochastic GD takes n_train steps per epoch; at 10,000 epochs that is 400,000 optimizer
    # steps (~20 min on a shared CPU), so it runs fewer epochs — the report says how many
    stochastic_epochs: int = 2_000
    l2: float = 1e-3  # λ of the L2 variant
    high_lr: float = 0.1  # the lecture's "Adam at α = 0.1"
    seed: int = 0

    @classmethod
    def quick(cls) -> SineConfig:
        return cls(epochs=1000, lr=1e-2, stochastic_epochs=100)


@dataclass(frozen=True)
class Variant:
    name: str
    optimizer: str = "adam"  # "adam" | "sgd"
    lr: float | None = None  # None: the config's lr
    batch_size: int | None = None  # None: full batch
    l2: float = 0.0
    sobolev: bool = False
    epochs: int | None = None  # None: the config's epochs


def variants(cfg: SineConfig) -> dict[str, list[Variant]]:
    """The comparison groups; the first entry of each group is the lecture baseline."""
    base = Variant("full batch, Adam")
    return {
        "gradient descent": [
            base,
            Variant(f"mini batch ({cfg.mini_batch}), Adam", batch_size=cfg.mini_batch),
            Variant(
                f"stochastic (1), Adam, {cfg.stochastic_epochs} epochs",
                batch_size=1,
                epochs=cfg.stochastic_epochs,
            ),
        ],
        "optimizer": [
            base,
            Variant(f"Adam lr {cfg.high_lr:g}", lr=cfg.high_lr),
            Variant(f"SGD lr {cfg.lr:g}", optimizer="sgd"),
            Variant(f"SGD lr {cfg.high_lr:g}", optimizer="sgd", lr=cfg.high_lr),
        ],
        "regularization": [base, Variant(f"L2 λ = {cfg.l2:g}", l2=cfg.l2)],
        "sobolev": [base, Variant("Sobolev (values + derivatives)", sobolev=True)],
    }


def capacity_table(
    examples: Sequence[tuple[int, int]] = CAPACITY_EXAMPLES, in_features: int = 2
) -> list[dict[str, int]]:
    """Parameter counts of the capacity examples, computed by building each network."""
    rows = []
    for layers, width in examples:
        net = mlp(in_features, 1, [width] * layers)
        rows.append({"layers": layers, "neurons": width, "parameters": parameter_count(net)})
    return rows


def target(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(2 * math.pi * x)


def target_derivative(x: torch.Tensor) -> torch.Tensor:
    return 2 * math.pi * torch.cos(2 * math.pi * x)


def make_data(cfg: SineConfig) -> dict[str, torch.Tensor]:
    """Inputs and targets, each [n, 1]: noisy train/val samples, the analytic test grid."""
    g = torch.Generator().manual_seed(cfg.seed)

    def noisy(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.rand((n, 1), generator=g) * 2 - 1
        return x, target(x) + cfg.noise * (torch.rand((n, 1), generator=g) * 2 - 1)

    x_train, y_train = noisy(cfg.n_train)
    x_val, y_val = noisy(cfg.n_val)
    x_test = torch.linspace(-1, 1, cfg.n_test).unsqueeze(1)
    return {
        "x_train": x_train,
        "y_train": y_train,
        "dy_train": target_derivative(x_train),
        "x_val": x_val,
        "y_val": y_val,
        "x_test": x_test,
        "y_test": target(x_test),
        "dy_test": target_derivative(x_test),
    }


def value_and_derivative(
    model: nn.Module, x: torch.Tensor, create_graph: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """ŷ and dŷ/dx by autograd, both [n, 1]. ``create_graph`` to train on the derivative."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        y = model(x)
        # each ŷ_i depends on x_i only, so the gradient of the sum is the pointwise derivative
        (dy,) = torch.autograd.grad(y.sum(), x, create_graph=create_graph)
    return y, dy


def sobolev_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, dy: torch.Tensor
) -> torch.Tensor:
    """mean (y − ŷ)² + mean (dy − dŷ/dx)², the lecture's Sobolev cost; derivative by autograd."""
    y_pred, dy_pred = value_and_derivative(model, x, create_graph=True)
    return torch.mean((y - y_pred) ** 2) + torch.mean((dy - dy_pred) ** 2)


def l2_penalty(model: nn.Module) -> torch.Tensor:
    """Σ‖W‖² over weight matrices (biases are not penalised)."""
    return sum(
        (p.pow(2).sum() for n, p in model.named_parameters() if n.endswith("weight")),
        start=torch.zeros(()),
    )


def train_variant(
    variant: Variant, data: dict[str, torch.Tensor], cfg: SineConfig
) -> tuple[nn.Module, dict[str, list[float]], float]:
    """Train one variant from the same initial weights; history of train/val MSE per epoch."""
    torch.manual_seed(cfg.seed)
    model = mlp(1, 1, cfg.hidden, cfg.act)
    lr = variant.lr if variant.lr is not None else cfg.lr
    optimizer: torch.optim.Optimizer = (
        torch.optim.Adam(model.parameters(), lr=lr)
        if variant.optimizer == "adam"
        else torch.optim.SGD(model.parameters(), lr=lr)
    )
    x, y, dy = data["x_train"], data["y_train"], data["dy_train"]
    n = x.shape[0]
    batch = variant.batch_size or n
    shuffle = torch.Generator().manual_seed(cfg.seed + 1)
    history: dict[str, list[float]] = {"train": [], "val": []}
    start = time.perf_counter()
    for _ in range(variant.epochs or cfg.epochs):
        order = torch.randperm(n, generator=shuffle) if batch < n else torch.arange(n)
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            optimizer.zero_grad()
            if variant.sobolev:
                loss = sobolev_loss(model, x[idx], y[idx], dy[idx])
            else:
                loss = torch.mean((y[idx] - model(x[idx])) ** 2)
            if variant.l2:
                loss = loss + variant.l2 * l2_penalty(model)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            history["train"].append(torch.mean((y - model(x)) ** 2).item())
            history["val"].append(torch.mean((data["y_val"] - model(data["x_val"])) ** 2).item())
    return model, history, time.perf_counter() - start


def evaluate(model: nn.Module, data: dict[str, torch.Tensor]) -> dict[str, float]:
    """MSE on train/val (noisy), on the analytic test set, and of dŷ/dx on the test set."""
    y_test, dy_test = value_and_derivative(model, data["x_test"], create_graph=False)
    with torch.no_grad():
        mse = lambda a, b: float(torch.mean((a - b) ** 2))  # noqa: E731
        return {
            "train_mse": mse(model(data["x_train"]), data["y_train"]),
            "val_mse": mse(model(data["x_val"]), data["y_val"]),
            "test_mse": mse(y_test, data["y_test"]),
            "test_derivative_mse": mse(dy_test, data["dy_test"]),
        }


def run_sine(
    cfg: SineConfig, out_dir: Path | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Train every variant once (the shared baseline once), evaluate, write report + plots."""
    data = make_data(cfg)
    groups = variants(cfg)
    unique = {v.name: v for group in groups.values() for v in group}
    models: dict[str, nn.Module] = {}
    histories: dict[str, dict[str, list[float]]] = {}
    results: dict[str, Any] = {"config": asdict(cfg), "variants": {}, "groups": {}}
    for name, variant in unique.items():
        model, history, seconds = train_variant(variant, data, cfg)
        models[name], histories[name] = model, history
        metrics = evaluate(model, data)
        results["variants"][name] = {**asdict(variant), **metrics, "train_seconds": seconds}
        log(f"sine: {name}: test MSE {metrics['test_mse']:.2e} ({seconds:.1f} s)")
    results["groups"] = {g: [v.name for v in group] for g, group in groups.items()}
    results["parameters"] = parameter_count(mlp(1, 1, cfg.hidden, cfg.act))
    results["capacity"] = capacity_table()
    if out_dir is not None:
        _write_outputs(cfg, results, data, models, histories, out_dir)
    return results


def _write_outputs(
    cfg: SineConfig,
    results: dict[str, Any],
    data: dict[str, torch.Tensor],
    models: dict[str, nn.Module],
    histories: dict[str, dict[str, list[float]]],
    out_dir: Path,
) -> None:
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    x_test = data["x_test"]
    figures = {}
    for group, names in results["groups"].items():
        fig, (ax_h, ax_p) = plt.subplots(1, 2, figsize=(13, 4.5))
        for i, name in enumerate(names):
            color = f"C{i}"
            ax_h.semilogy(histories[name]["train"], color=color, lw=1, label=f"{name} (train)")
            ax_h.semilogy(histories[name]["val"], color=color, lw=1, ls="--", label="val")
            if group == "sobolev":
                _, dy = value_and_derivative(models[name], x_test, create_graph=False)
                ax_p.plot(x_test, dy.detach(), color=color, label=f"{name}: dŷ/dx")
            else:
                with torch.no_grad():
                    ax_p.plot(x_test, models[name](x_test), color=color, label=name)
        if group == "sobolev":
            ax_p.plot(x_test, data["dy_test"], "k--", lw=1, label="2π cos(2πx)")
        else:
            ax_p.plot(x_test, data["y_test"], "k--", lw=1, label="sin(2πx)")
            ax_p.scatter(data["x_train"], data["y_train"], s=10, c="k", label="training data")
            ax_p.set_ylim(-1.6, 1.6)
        # the histories are the value MSE for every variant (also Sobolev's, whose loss adds the
        # derivative term), so the curves of one panel are comparable
        ax_h.set(xlabel="epoch", ylabel="MSE of ŷ", title=f"learning histories: {group}")
        what = "derivative dŷ/dx" if group == "sobolev" else "prediction ŷ"
        ax_p.set(xlabel="x", title=f"{what} vs truth on the test set")
        ax_h.legend(fontsize=7, ncol=2)
        ax_p.legend(fontsize=7)
        figures[group] = save_figure(fig, out_dir / f"sine_{group.replace(' ', '_')}.png")

    header = ["group", "variant", "train MSE", "val MSE", "test MSE", "test dy/dx MSE", "train s"]
    rows = []
    for group, names in results["groups"].items():
        for name in names:
            r = results["variants"][name]
            rows.append(
                [
                    group,
                    name,
                    f"{r['train_mse']:.2e}",
                    f"{r['val_mse']:.2e}",
                    f"{r['test_mse']:.2e}",
                    f"{r['test_derivative_mse']:.2e}",
                    f"{r['train_seconds']:.1f}",
                ]
            )
    capacity = markdown_table(
        ["hidden layers", "neurons", "parameters (2 inputs, 1 output)"],
        [[c["layers"], c["neurons"], f"{c['parameters']:,}"] for c in results["capacity"]],
    )
    body = [
        f"f(x) = sin(2πx) on [−1, 1]; MLP {list(cfg.hidden)} {cfg.act} "
        f"({results['parameters']} parameters); {cfg.n_train} train / {cfg.n_val} val samples with "
        f"noise {cfg.noise}·U(−1, 1); test = analytic function on {cfg.n_test} points; "
        f"{cfg.epochs} epochs, lr {cfg.lr:g} unless stated; seed {cfg.seed}. "
        "MSE of dy/dx is of the network's autograd derivative against 2π cos(2πx).",
        markdown_table(header, rows),
        "Parameter counts of the lecture's capacity examples, computed by building each network:",
        capacity,
    ]
    write_report(out_dir / "sine.md", "Sine: fully connected network", body, figures)


def with_epochs(cfg: SineConfig, epochs: int | None) -> SineConfig:
    """``cfg`` with its epoch count overridden (None keeps it)."""
    return replace(cfg, epochs=epochs) if epochs else cfg
