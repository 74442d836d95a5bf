"""Makes the ``bnn`` dialect, the bnnmlir passes and targets visible to plain ``xdsl-opt``."""

from xdsl.universe import Universe

from bnnmlir.passes import get_all_passes


def _bnn_dialect():
    from bnnmlir.dialects import BNN

    return BNN


BNNMLIR_UNIVERSE = Universe(
    all_dialects={"bnn": _bnn_dialect},
    all_passes=get_all_passes(),
)
