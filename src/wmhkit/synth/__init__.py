"""Phantom cohorts: realistic synthetic FLAIR/T1 with known WMH, the bundled default data.

``synthesize_cohort(out_dir, n_subjects)`` (CLI: ``wmhkit synth``) warps the MNI
ICBM152 2009a anatomy shipped with nilearn per subject (size, pose, smooth warp,
atrophy and ventricular enlargement growing with age and stage), draws WMH
whose burden grows CN < MCI < AD and with age, and images it on one of five
scanner profiles (:mod:`wmhkit.synth.scanners`), writing FLAIR, T1, the gold
lesion mask and the true brain mask plus ``manifest.tsv``.
"""

from wmhkit.synth.cohort import synthesize_cohort, synthesize_subject
from wmhkit.synth.scanners import SCANNER_PROFILES, ScannerProfile

__all__ = ["SCANNER_PROFILES", "ScannerProfile", "synthesize_cohort", "synthesize_subject"]
