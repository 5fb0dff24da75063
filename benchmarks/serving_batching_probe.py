"""Probe service for benchmarks/bench_serving_profile.py: BentoML adaptive batching vs plain.

Both endpoints run the same onnxruntime session on ``E`` ``[N, 1, 32, 32]`` without the product's
validation, so the difference is only BentoML's dispatcher. Not part of the product.
"""

from __future__ import annotations

import bentoml
import numpy as np

from microstrain.surrogate import SurrogateModel, default_model_dir
from serving.settings import configured_workers, intra_op_threads


@bentoml.service(name="batching_probe", workers=configured_workers(), threads=1)
class BatchingProbe:
    def __init__(self) -> None:
        threads = intra_op_threads(configured_workers())
        self.model = SurrogateModel.load(default_model_dir(), intra_op_threads=threads)

    @bentoml.api
    def plain(self, E: np.ndarray) -> np.ndarray:
        return self.model.predict(E)  # [N, 3, 32, 32]

    # a tight max_latency_ms makes the dispatcher shed load with 503 on a busy 2-core machine
    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=1000)
    def batched(self, E: np.ndarray) -> np.ndarray:
        return self.model.predict(E)  # requests concatenated along N by BentoML
