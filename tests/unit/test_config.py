from dataclasses import dataclass, field

import pytest

from interp.config import ConfigError, apply_overrides, from_dict, load_config


@dataclass
class Inner:
    name: str = "a"
    layers: list[int] = field(default_factory=lambda: [1, 2])
    tol: float = 0.1


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    seed: int = 0
    note: str | None = None


def test_nested_dataclass_from_dict():
    cfg = from_dict(Outer, {"inner": {"name": "b", "layers": [3], "tol": 1}, "seed": 4})
    assert cfg.inner.name == "b" and cfg.inner.layers == [3] and cfg.seed == 4
    assert isinstance(cfg.inner.tol, float)


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"inner\.nmae"):
        from_dict(Outer, {"inner": {"nmae": "x"}})
    with pytest.raises(ConfigError, match="'sede'.*allowed keys"):
        from_dict(Outer, {"sede": 1})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match="'seed' expects int"):
        from_dict(Outer, {"seed": "three"})


def test_overrides_parse_yaml_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  name: x\nseed: 1\n")
    cfg = load_config(Outer, path, ["inner.layers=[5, 6]", "seed=7", "note=hi", "inner.tol=0.5"])
    assert cfg.inner.layers == [5, 6] and cfg.seed == 7 and cfg.note == "hi" and cfg.inner.tol == 0.5
    assert cfg.inner.name == "x"


def test_override_errors():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["seed"])
    with pytest.raises(ConfigError, match="unknown config key 'bogus'"):
        load_config(Outer, None, ["bogus=1"])


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_settings_part_is_a_plain_copy_of_the_base_fields():
    import dataclasses

    from interp.config import settings_part

    @dataclasses.dataclass
    class Base:
        a: int = 1
        b: list = dataclasses.field(default_factory=lambda: [1])

    @dataclasses.dataclass
    class Experiment(Base):
        extra: str = "x"

    part = settings_part(Experiment(a=5, b=[2, 3]), Base)
    assert type(part) is Base and part.a == 5 and part.b == [2, 3]
    with pytest.raises(TypeError, match="not a Experiment"):
        settings_part(Base(), Experiment)
