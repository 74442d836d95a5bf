"""What the importer tells a user about a model it cannot compile: the line of the user's own
source (never one inside PyTorch or bnnmlir), the module path and class, and for a module that
has no translation as a whole (an LSTM, attention, an embedding...) that module, not the ATen op
where the import stopped."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch
from torch import nn
from xdsl.dialects.builtin import FileLineColLoc, NameLoc

from bnnmlir.frontend import UnsupportedModuleError, UnsupportedOperationError, import_model
from bnnmlir.nn import BinaryConv2d, Clip8

USER_MODEL = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = nn.GELU()

    def forward(self, x):
        y = self.conv(x)
        return self.act(y)  # GELU CALL
'''


def load_user_module(tmp_path: Path, source: str):
    """Import ``source`` as a module from a file of its own, as a user's model file."""
    name = f"user_model_{uuid.uuid4().hex}"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module, path


def line_of(path: Path, marker: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if marker in line)


def test_unsupported_gelu_names_the_user_file_and_line(tmp_path: Path):
    module, path = load_user_module(tmp_path, USER_MODEL)
    with pytest.raises(UnsupportedOperationError) as e:
        import_model(module.Net(), (torch.randn(1, 3, 8, 8),))
    error = e.value
    assert error.source == f"{path}:{line_of(path, 'GELU CALL')}"
    assert error.module_path == "act" and error.module_type == "nn.GELU"
    message = str(error)
    assert "aten.gelu" in message and f"{path}:{line_of(path, 'GELU CALL')}" in message
    assert "module 'act'" in message and "nn.GELU" in message
    assert "activation.py" not in message and "site-packages" not in message


def test_locations_name_the_user_line_of_each_layer(tmp_path: Path):
    source = USER_MODEL.replace("nn.GELU()", "nn.ReLU()")
    module, path = load_user_module(tmp_path, source)
    imported = import_model(module.Net(), (torch.randn(1, 3, 8, 8),))
    fn = next(iter(imported.module.ops))
    located = {op.location.desc.data: op.location.location for op in fn.body.block.ops
               if isinstance(op.location, NameLoc) and op.location.desc.data in ("conv", "act")}
    assert set(located) == {"conv", "act"}
    for layer, marker in (("conv", "y = self.conv(x)"), ("act", "GELU CALL")):
        loc = located[layer]
        assert isinstance(loc, FileLineColLoc)
        assert (loc.filename.data, loc.line.data) == (str(path), line_of(path, marker))


def test_library_layers_without_a_user_line_name_no_library_file():
    """A ``Sequential`` of library layers runs no line of the user's: the error names the module
    path and class, and no file of PyTorch."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU())
    with pytest.raises(UnsupportedOperationError) as e:
        import_model(model, (torch.randn(1, 3, 8, 8),))
    assert e.value.source == "" and ".py" not in str(e.value)
    assert "module '1' (nn.GELU)" in str(e.value)


def test_bnnmlir_layers_point_at_the_user_line(tmp_path: Path):
    """A ``bnnmlir.nn`` layer's ops are located at the user's call, not in bnnmlir's layer code."""
    module, path = load_user_module(tmp_path, '''
        from torch import nn
        from bnnmlir.nn import BinaryConv2d

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = BinaryConv2d(3, 4, 3)

            def forward(self, x):
                return self.conv(x)  # CONV
        ''')
    imported = import_model(module.Net(), (torch.randn(1, 3, 6, 6),))
    fn = next(iter(imported.module.ops))
    (conv,) = [op for op in fn.body.block.ops if op.name == "bnn.bconv2d"]
    loc = conv.location
    assert isinstance(loc, NameLoc) and loc.desc.data == "conv"
    assert isinstance(loc.location, FileLineColLoc)
    assert (loc.location.filename.data, loc.location.line.data) == (str(path),
                                                                     line_of(path, "CONV"))


class Encoder(nn.Module):
    def __init__(self, rnn: nn.Module):
        super().__init__()
        self.rnn = rnn


class Tagger(nn.Module):
    def __init__(self, rnn: nn.Module, features: int):
        super().__init__()
        self.encoder = Encoder(rnn)
        self.head = nn.Linear(features, 2)

    def forward(self, x):
        y = self.encoder.rnn(x)[0]
        return self.head(y[:, -1])


class MyLSTM(nn.LSTM):
    """A user subclass: still a recurrent layer."""


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x)[0]


class FloatIndexEmbedding(nn.Embedding):
    """An embedding indexed by a float tensor holding integers."""

    def forward(self, x):
        return super().forward(x.long())


class Lookup(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = FloatIndexEmbedding(10, 4)

    def forward(self, x):
        return self.embed(x).flatten(1)


class Normed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = BinaryConv2d(3, 6, 3, padding=1)
        self.clip = Clip8()
        self.norm = nn.GroupNorm(2, 6)

    def forward(self, x):
        return self.norm(self.clip(self.conv(x)))


@pytest.mark.parametrize(
    "model, x, path, cls, reason",
    [
        (Tagger(nn.LSTM(8, 16, batch_first=True), 16), torch.randn(2, 5, 8), "encoder.rnn",
         "nn.LSTM", "recurrent layers have no binary form"),
        (Tagger(nn.GRU(8, 6, batch_first=True), 6), torch.randn(1, 3, 8), "encoder.rnn",
         "nn.GRU", "recurrent layers have no binary form"),
        (Tagger(nn.RNN(8, 6, batch_first=True), 6), torch.randn(1, 3, 8), "encoder.rnn",
         "nn.RNN", "recurrent layers have no binary form"),
        (Tagger(MyLSTM(8, 4, batch_first=True), 4), torch.randn(1, 3, 8), "encoder.rnn",
         f"{__name__}.MyLSTM", "recurrent layers have no binary form"),
        (Attention(), torch.randn(1, 4, 8), "attn", "nn.MultiheadAttention", "softmax"),
        (Lookup(), torch.randint(0, 10, (2, 3)).float(), "embed",
         f"{__name__}.FloatIndexEmbedding", "table lookup"),
        (Normed(), torch.randn(1, 3, 5, 5), "norm", "nn.GroupNorm", "statistics of the run-time"),
    ],
    ids=["lstm", "gru", "rnn", "lstm-subclass", "attention", "embedding", "groupnorm"],
)
def test_unsupported_module_is_named_instead_of_its_ops(model, x, path, cls, reason):
    with pytest.raises(UnsupportedModuleError) as e:
        import_model(model, (x,))
    message = str(e.value)
    assert message.startswith(f"{cls} at '{path}' is not supported: "), message
    assert reason in message
    assert e.value.op.startswith("aten.") and e.value.op in message  # where the import stopped
    assert e.value.module_path == path and e.value.module_type == cls
    if cls != "nn.MultiheadAttention":  # called from this file's forward
        assert f"{__file__}:" in message


def test_embedding_fed_by_an_integer_input_is_named():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten())
    with pytest.raises(UnsupportedModuleError) as e:
        import_model(model, (torch.randint(0, 10, (2, 3)),))
    assert str(e.value).startswith("nn.Embedding at '0' is not supported: an embedding is a table")
    assert "dtype torch.int64" not in str(e.value)  # the reason is the module, not the dtype
    assert "(import stopped at model input 'input')" in str(e.value)


def test_supported_layers_inside_a_user_module_keep_the_op_message():
    """A failing op of a module the importer does support is reported as the op."""
    model = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(UnsupportedOperationError) as e:
        import_model(model, (torch.randn(2, 5, 4),))
    assert not isinstance(e.value, UnsupportedModuleError)
    assert "aten.linear" in str(e.value) and "needs a 2-D input" in str(e.value)
