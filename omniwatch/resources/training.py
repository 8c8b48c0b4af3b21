"""The training protocol's knobs as a resource, so a deployment (or a test) can size a run."""

from __future__ import annotations

import dagster as dg


class TrainingResource(dg.ConfigurableResource):
    """Overrides of ``omniwatch.ml.protocol.TrainingConfig``; the frozen result is what gets logged."""

    kfold_splits: int = 3
    wf_test_windows: int = 4
    min_train_days: int = 120
    window_stride_hours: int = 3
    tsmixer_max_epochs: int = 6
    tsmixer_d_ff: int = 32
    lightgbm_max_rounds: int = 400
    seed: int = 11

    def config(self):
        from omniwatch.ml.lgbm import LightGBMConfig
        from omniwatch.ml.protocol import TrainingConfig, default_tsmixer

        tsmixer = default_tsmixer() | {"max_epochs": self.tsmixer_max_epochs, "d_ff": self.tsmixer_d_ff,
                                        "seed": self.seed}
        return TrainingConfig(
            kfold_splits=self.kfold_splits, wf_test_windows=self.wf_test_windows,
            min_train_days=self.min_train_days, window_stride_hours=self.window_stride_hours,
            tsmixer=tsmixer, lightgbm=LightGBMConfig(max_rounds=self.lightgbm_max_rounds, seed=self.seed),
        )
