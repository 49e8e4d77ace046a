"""The reference pipeline is meant to be one user of the plugin: built from the public API only.

Public is what ``aiops_assets`` exports (``aiops_assets.__all__``) and the Dagster-free library in
``aiops_assets.core`` (docs/plugin.md, "Public API"). The reference does not get there yet: the
modules below are the private plugin modules it still imports, each a piece of the reference that
is still special-cased. The list is a ratchet: a new private import fails the test, and so does a
listed one that is no longer imported (so the list shrinks as the reference moves onto the API).
"""

from aiops_assets_tests.test_layering import internal_imports, layer

# Private plugin modules the reference still imports (issue 21, point 6: to be emptied).
STILL_PRIVATE = frozenset(
    {
        "aiops_assets.audits",
        "aiops_assets.baselines",
        "aiops_assets.check_history",
        "aiops_assets.checks.quality",
        "aiops_assets.keys",
        "aiops_assets.lifecycle.champion",
        "aiops_assets.lifecycle.evidence",
        "aiops_assets.metadata",
        "aiops_assets.resources",
        "aiops_assets.runner",
    }
)


def private_imports_of_the_reference() -> dict[str, list[str]]:
    """Each private plugin module the reference imports, with where."""
    found: dict[str, list[str]] = {}
    for item in internal_imports():
        if not item.importer.startswith("aiops_assets.reference"):
            continue
        if layer(item.imported) != "plugin" or item.imported == "aiops_assets":
            continue  # core, the public package, or the reference itself
        found.setdefault(item.imported, []).append(f"{item.importer}:{item.line}")
    return found


def test_the_reference_imports_no_new_private_module_of_the_plugin() -> None:
    found = private_imports_of_the_reference()
    new = {module: where for module, where in found.items() if module not in STILL_PRIVATE}
    assert not new, (
        f"the reference imports private plugin modules {new}: use the public API "
        "(aiops_assets.__all__, aiops_assets.core) instead"
    )


def test_the_list_of_still_private_imports_only_shrinks() -> None:
    gone = sorted(STILL_PRIVATE - set(private_imports_of_the_reference()))
    assert not gone, f"the reference no longer imports {gone}: remove them from STILL_PRIVATE"


def test_the_ratchet_sees_an_import_of_a_private_module() -> None:
    found = private_imports_of_the_reference()
    # The reference's champion moves through the lifecycle's private champion module today.
    assert any(
        where.startswith("aiops_assets.reference.assets.models:")
        for where in found["aiops_assets.lifecycle.champion"]
    )
