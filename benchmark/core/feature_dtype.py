"""How the feature cache stores features (`measure.feature_dtype`), in one place: the run's
config checks the setting, the feature store uses it, and a record's identity holds it.

auto: as the model runs (float32 reads back exactly what was computed; a half run rounds its input
anyway); float16 halves a float32 run's cache at a small cost (docs/scale.md)."""
FEATURE_DTYPES = ("auto", "float32", "float16")


def feature_storage(dtype: str, feature_dtype: str) -> str:
    """The dtype features are stored in, for a run in `dtype` asking `feature_dtype`."""
    return dtype if feature_dtype == "auto" else feature_dtype
