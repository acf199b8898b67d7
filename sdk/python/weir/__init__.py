"""Python client for the weir gateway, for notebooks and scripts.

Standard library only. pandas and numpy are used when they are importable:
a DataFrame can be a model's reference data, and numpy arrays can be infer
inputs (answers then come back as arrays too).

    from weir import Client
    c = Client()                       # as the CLI: $WEIR_SERVER, $WEIR_ADMIN_TOKEN,
                                       # token_file=, or what `weir login` saved
    c.push_model("fraud", "3", "model.onnx",
                 features=["amount_log", "amount_zscore", "merchant_risk", "is_night"],
                 reference="train.csv")  # or reference=train_df[features]
    c.infer("fraud", [[4.1, 2.5, 0.84, 1]])
    c.canary_start("fraud", "fraud@3", steps=[25, 50, 100], interval="15s", min_requests=10)
    c.canary_watch("fraud")
    c.drift("fraud")
"""

from .client import Client, WeirError, config_path

__all__ = ["Client", "WeirError", "config_path"]
__version__ = "0.1.0"
