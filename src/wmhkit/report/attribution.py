"""Attribution lines that a dataset's licence asks for wherever results on it are shown.

The registry is keyed by the manifest's ``dataset`` value. Add an entry when a
dataset's licence requires attribution (CC-BY and the like); the report lists
the entries of every dataset it shows, and names the datasets it has no entry
for so that a reader can check their licences.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Attribution:
    """How to credit one dataset.

    Attributes
    ----------
    dataset
        The manifest's ``dataset`` value.
    title
        What the data are, in a few words.
    citation
        The reference to cite.
    licence
        The licence the data are shared under.
    notice
        Further text the licence asks to be reproduced (copyright notice), or "".
    """

    dataset: str
    title: str
    citation: str
    licence: str
    notice: str = ""


_ICBM_2009A_NOTICE = (
    "Copyright (C) 1993–2009 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological "
    "Institute, McGill University."
)

#: Known datasets, by ``dataset`` value.
ATTRIBUTIONS: dict[str, Attribution] = {
    entry.dataset: entry
    for entry in (
        Attribution(
            dataset="lesjak2018",
            title="3D MR image database of multiple sclerosis patients with white matter lesion "
            "segmentations (University of Ljubljana)",
            citation="Lesjak Ž. et al., “A novel public MR image dataset of multiple sclerosis patients with "
            "lesion segmentations based on multi-rater consensus”, Neuroinformatics 16:51–63 (2018)",
            licence="CC BY 4.0",
        ),
        Attribution(
            dataset="phantom",
            title="wmhkit phantoms, warped from the MNI ICBM 2009a nonlinear symmetric template "
            "(as shipped with nilearn)",
            citation="Fonov V. S. et al., “Unbiased average age-appropriate atlases for pediatric studies”, "
            "NeuroImage 54(1):313–327 (2011)",
            licence="ICBM 2009a template licence (free use with the copyright notice)",
            notice=_ICBM_2009A_NOTICE,
        ),
    )
}


def attributions_for(datasets: Iterable[str]) -> tuple[list[Attribution], list[str]]:
    """The registry entries of ``datasets``, and the dataset names it has no entry for.

    Empty names are ignored; both lists are sorted by dataset name.

    Examples
    --------
    >>> known, unknown = attributions_for(["phantom", "mylab", "", "phantom"])
    >>> [a.dataset for a in known], unknown
    (['phantom'], ['mylab'])
    """
    names = sorted({str(name) for name in datasets if str(name).strip()})
    known = [ATTRIBUTIONS[name] for name in names if name in ATTRIBUTIONS]
    unknown = [name for name in names if name not in ATTRIBUTIONS]
    return known, unknown
