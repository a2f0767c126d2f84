"""Reading a SIREN's layout from a state dict."""

import pytest
import torch

from symmerge import SirenSpec, SymmergeError


def test_siren_layout_from_state_dict():
    from symmerge.specs.siren import siren_layout

    assert siren_layout(SirenSpec((2, 7, 5, 3)).module().state_dict()) == (2, 7, 5, 3)
    z = torch.zeros
    bad = {
        "not seq": {"fc.weight": z(2, 2)},
        "not seq.0 .. seq.L-1": {"seq.1.weight": z(2, 2), "seq.1.bias": z(2)},
        "needs both": {"seq.0.weight": z(2, 2)},
        "must be 2-D": {"seq.0.weight": z(2), "seq.0.bias": z(2)},
        "has 4 inputs": {"seq.0.weight": z(3, 2), "seq.0.bias": z(3),
                         "seq.1.weight": z(1, 4), "seq.1.bias": z(1)},
    }
    for match, state in bad.items():
        with pytest.raises(SymmergeError, match=match):
            siren_layout(state)
