"""The generic named registry: lookup, lazy entries, errors that list the choices, help text."""
import pytest

from meddtfm.registry import Registry, UnknownNameError


def _colours() -> Registry[int]:
    colours: Registry[int] = Registry("colour")
    colours.add("red", "the first", 1)
    colours.add("green", "the second", 2)
    return colours


def test_entries_keep_their_order_and_description():
    colours = _colours()
    assert colours["green"] == 2 and colours.names() == ("red", "green") and list(colours) == ["red", "green"]
    assert "red" in colours and "blue" not in colours and len(colours) == 2
    assert colours.entry("red").description == "the first"
    assert colours.describe() == "red: the first; green: the second"
    assert colours.describe(", ") == "red: the first, green: the second"


def test_an_unknown_name_lists_the_choices():
    with pytest.raises(UnknownNameError, match="unknown colour 'blue'; choose from red, green"):
        _colours()["blue"]
    assert issubclass(UnknownNameError, ValueError), "callers that turn ValueError into a usage error keep working"


def test_names_are_unique_and_fit_a_comma_separated_option():
    colours = _colours()
    with pytest.raises(ValueError, match="registered twice"):
        colours.add("red", "again", 3)
    for bad in ("", "dark red", "red,green"):
        with pytest.raises(ValueError, match="colour name"):
            colours.add(bad, "bad", 0)


def test_register_decorates_and_returns_the_object():
    shapes: Registry[type] = Registry("shape")

    @shapes.register("square", "four equal sides")
    class Square:
        pass

    assert shapes["square"] is Square and Square.__name__ == "Square"


def test_lazy_entries_import_on_lookup():
    lazy: Registry[object] = Registry("thing")
    lazy.add_lazy("path", "pathlib's Path", "pathlib:Path")
    lazy.add_lazy("missing", "a module that does not exist", "meddtfm.no_such_module:Thing")
    from pathlib import Path

    assert lazy["path"] is Path and lazy.names() == ("path", "missing")
    with pytest.raises(ModuleNotFoundError):
        lazy["missing"]
    with pytest.raises(ValueError, match="package.module:attribute"):
        lazy.add_lazy("broken", "no attribute", "pathlib")
