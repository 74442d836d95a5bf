"""Every Python package of the source tree is listed in pyproject.toml (a wheel would drop it)."""

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_package_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    found = set()
    for package, directory in mapping.items():
        base = ROOT / directory
        for init in base.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(base)
            found.add(".".join([package, *rel.parts]) if rel.parts else package)
    assert found - listed == set(), f"packages missing from pyproject.toml: {sorted(found - listed)}"
    assert listed - found == set(), f"listed packages that do not exist: {sorted(listed - found)}"


def test_runtime_sources_ship_as_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "*.c" in config["package-data"]["bnnmlir.runtime"]
    assert any((ROOT / "runtime").glob("*.c"))


def layout_rows() -> dict[str, str]:
    """The README's Layout table: path -> contents."""
    import re

    text = (ROOT / "README.md").read_text()
    layout = text[text.index("## Layout"):]
    rows = {}
    for line in layout.splitlines():
        found = re.match(r"\| `([^`]+)` \| (.*) \|$", line)
        if found:
            rows[found.group(1)] = found.group(2)
    return rows


def test_readme_layout_matches_the_tree():
    import re

    rows = layout_rows()
    assert [p for p in rows if not (ROOT / p).exists()] == []
    packages = {f"bnnmlir/{d.name}/" for d in (ROOT / "bnnmlir").iterdir()
                if (d / "__init__.py").exists()}
    assert packages - set(rows) == set(), "packages missing from the README layout"
    for path, contents in rows.items():
        for name in re.findall(r"`([\w/]+\.(?:py|md))`", contents):
            assert list((ROOT / path).rglob(name.rsplit("/", 1)[-1])), f"{path}{name} is missing"
    top_modules = {p.name for p in (ROOT / "bnnmlir").glob("*.py")} - {"__init__.py"}
    named = set(re.findall(r"`(\w+\.py)`", rows["bnnmlir/"]))
    assert top_modules - named == set(), "modules missing from the README layout"
