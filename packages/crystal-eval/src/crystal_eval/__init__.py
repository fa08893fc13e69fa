"""crystal-eval: MP-20 generative metrics (the paper's Table 1) for any model's crystal output.

Public API: :func:`evaluate` (everything at once) and one pure function per metric:
:func:`structure_validity`, :func:`composition_validity`, :func:`uniqueness`, :func:`is_novel`,
:func:`wasserstein`, :func:`js_distance`, :func:`cmd`, :func:`mean_pairwise_distance`, plus the
feature functions :func:`crystalnn_fingerprint`, :func:`magpie_fingerprint`, :func:`symmetry_features`,
and :func:`evaluate_stability` (ML-potential stability and S.U.N.; needs the extra ``crystal-eval[stability]``).
The package does not import any model.
"""

from crystal_eval.evaluation import (
    DEFAULT_SUBSETS,
    METRIC_KEYS,
    EvalConfig,
    EvalResult,
    evaluate,
    evaluate_detailed,
    format_table,
)
from crystal_eval.features import (
    crystalnn_fingerprint,
    magpie_fingerprint,
    standardise_magpie,
    symmetry_features,
)
from crystal_eval.io import InputError, load_items
from crystal_eval.metrics import (
    cmd,
    js_distance,
    mean_pairwise_distance,
    space_group_histogram,
    un_rate,
    wasserstein,
    wilson_interval,
    wyckoff_dim_histogram,
)
from crystal_eval.novelty import is_novel, novelty_check, structures_match, uniqueness, uniqueness_checked
from crystal_eval.stability import STABILITY_KEYS, StabilityConfig, evaluate_stability
from crystal_eval.validity import composition_validity, structure_validity

__version__ = "0.2.0"

__all__ = [
    "DEFAULT_SUBSETS",
    "METRIC_KEYS",
    "STABILITY_KEYS",
    "StabilityConfig",
    "EvalConfig",
    "EvalResult",
    "InputError",
    "cmd",
    "composition_validity",
    "crystalnn_fingerprint",
    "evaluate",
    "evaluate_detailed",
    "evaluate_stability",
    "format_table",
    "is_novel",
    "js_distance",
    "load_items",
    "magpie_fingerprint",
    "mean_pairwise_distance",
    "novelty_check",
    "space_group_histogram",
    "standardise_magpie",
    "structure_validity",
    "structures_match",
    "symmetry_features",
    "un_rate",
    "uniqueness",
    "uniqueness_checked",
    "wasserstein",
    "wilson_interval",
    "wyckoff_dim_histogram",
]
