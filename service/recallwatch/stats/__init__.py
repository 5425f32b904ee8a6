"""Small, pure statistics: intervals, sequential tests and paired tests.

Everything here is a plain function over numbers or numpy arrays: no I/O, no clock, no globals.

- ``intervals`` — Wilson (with a finite-population correction), stratified, ratio and mean
  intervals, and sample sizes for a target half-width;
- ``sequential`` — Wald's SPRT for a Bernoulli rate and the matching fixed-size binomial test;
- ``paired`` — the paired randomisation (sign-flip) test of two checkpoints;
- ``hierarchical`` — the two-level (queries and checkpoints) test of a level change, with a
  moderated checkpoint variance and per-look levels for repeated looks;
- ``student_t`` — Student's t CDF and quantiles;
- ``chi_square`` — chi-square quantiles (Wilson-Hilferty).
"""

from recallwatch.stats.intervals import (
    STRATUM_PSEUDO_COUNT,
    Interval,
    StratifiedEstimate,
    mean_interval,
    ratio_interval,
    sample_size_for_half_width,
    stratified_interval,
    stratified_intervals,
    wilson_half_width,
    wilson_interval,
    z_value,
)
from recallwatch.stats.paired import (
    PairedTest,
    paired_randomisation_pvalues,
    paired_randomisation_test,
)
from recallwatch.stats.sequential import (
    FixedTest,
    SPRTDecision,
    SPRTDesign,
    SPRTResult,
    SPRTStep,
    fixed_sample_test,
    sprt_path,
    sprt_run,
    sprt_update,
)

__all__ = [
    "STRATUM_PSEUDO_COUNT",
    "FixedTest",
    "Interval",
    "PairedTest",
    "SPRTDecision",
    "SPRTDesign",
    "SPRTResult",
    "SPRTStep",
    "StratifiedEstimate",
    "fixed_sample_test",
    "mean_interval",
    "paired_randomisation_pvalues",
    "paired_randomisation_test",
    "ratio_interval",
    "sample_size_for_half_width",
    "sprt_path",
    "sprt_run",
    "sprt_update",
    "stratified_interval",
    "stratified_intervals",
    "wilson_half_width",
    "wilson_interval",
    "z_value",
]
