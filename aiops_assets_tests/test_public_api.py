"""The public API: exactly the names docs/plugin.md lists, each documented with an example, loaded
lazily, and enough for a foreign project (it needs no private or submodule name)."""

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import aiops_assets
from aiops_assets_tests.lifecycle.test_pyfunc import DEFINITIONS as PYFUNC_DEFINITIONS
from aiops_assets_tests.lifecycle.test_pyfunc import SPEC as PYFUNC_SPEC
from aiops_assets_tests.test_foreign_model import PROJECT_FILES as MODEL_PROJECT_FILES
from aiops_assets_tests.test_foreign_project import PROJECT_FILES

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugin.md"
SECTIONS = re.compile(r"^\s*(Args|Attributes|Example|Examples|Returns|Raises):\s*$", re.MULTILINE)


def documented_names() -> list[str]:
    """The names in the first column of the table under "## Public API" in docs/plugin.md."""
    text = DOCS.read_text()
    section = text.split("## Public API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)


def test_all_is_exactly_the_documented_list() -> None:
    names = documented_names()
    assert names, "docs/plugin.md has no Public API table"
    assert sorted(aiops_assets.__all__) == sorted(names)
    assert len(set(aiops_assets.__all__)) == len(aiops_assets.__all__)
    assert sorted(dir(aiops_assets)) == sorted(names)


def _sections(doc: str) -> dict[str, str]:
    parts = SECTIONS.split(doc)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


@pytest.mark.parametrize("name", aiops_assets.__all__)
def test_every_public_name_has_a_google_style_docstring_with_an_example(name: str) -> None:
    obj = getattr(aiops_assets, name)
    doc = inspect.getdoc(obj) or ""
    summary = doc.split("\n", 1)[0]
    assert summary.strip() and summary.rstrip().endswith("."), f"{name}: no summary line"
    sections = _sections(doc)
    example = sections.get("Example") or sections.get("Examples") or ""
    assert name in example or ">>>" in example, f"{name}: no Example section using it"
    if inspect.isclass(obj):
        fields = list(getattr(obj, "model_fields", {}))
        documented = sections.get("Attributes", "")
    else:
        fields = list(inspect.signature(obj).parameters)
        documented = sections.get("Args", "")
    missing = [field for field in fields if not re.search(rf"^\s*{field}\b.*:", documented, re.M)]
    assert not missing, (
        f"{name}: undocumented {'fields' if inspect.isclass(obj) else 'args'} {missing}"
    )


@pytest.mark.parametrize("name", aiops_assets.__all__)
def test_every_public_name_is_the_object_its_module_defines(name: str) -> None:
    obj = getattr(aiops_assets, name)
    assert obj.__module__.startswith("aiops_assets.")
    assert getattr(sys.modules[obj.__module__], name) is obj


def test_anything_else_is_not_an_attribute_of_the_package() -> None:
    with pytest.raises(AttributeError, match="no attribute 'build_reference_assets'"):
        _ = aiops_assets.build_reference_assets


@pytest.mark.subprocess  # a fresh interpreter, then the aiops command
def test_importing_the_package_does_not_import_dagster_and_the_cli_still_answers() -> None:
    probe = (
        "import sys, aiops_assets\n"
        "assert 'dagster' not in sys.modules, 'aiops_assets imports dagster eagerly'\n"
        "from aiops_assets.cli import main\n"
        "main(['--help'])\n"
    )
    helped = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert helped.returncode == 0, helped.stderr
    assert "Usage: aiops" in helped.stdout


def _imports(source: str) -> list[tuple[str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def _attributes_of(source: str, module: str) -> set[str]:
    return {
        node.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == module
    }


def test_the_foreign_project_needs_only_public_names() -> None:
    public = set(aiops_assets.__all__)
    # The monitoring project, the model project (test_foreign_model.py) and the pyfunc one
    # (lifecycle/test_pyfunc.py): all public-only.
    sources = {
        path: text
        for path, text in [
            *PROJECT_FILES.items(),
            *MODEL_PROJECT_FILES.items(),
            ("breach_ops/spec.py", PYFUNC_SPEC),
            ("breach_ops/definitions.py", PYFUNC_DEFINITIONS),
        ]
        if path.endswith(".py")
    }
    used: set[str] = set()
    for path, text in sources.items():
        source = inspect.cleandoc(text) if text.strip() else ""
        for module, names in _imports(source):
            if module.split(".")[0] != "aiops_assets":
                continue
            assert module == "aiops_assets", f"{path} imports the submodule {module}"
            assert set(names) <= public, f"{path} imports {set(names) - public}"
            used |= set(names)
        attributes = _attributes_of(source, "aiops_assets")
        assert attributes <= public, f"{path} uses {attributes - public}"
        used |= attributes
    for path, text in PROJECT_FILES.items():
        if path.endswith("defs.yaml"):
            component_type = yaml.safe_load(inspect.cleandoc(text))["type"]
            module, _, name = component_type.rpartition(".")
            assert module == "aiops_assets" and name in public, component_type
            used.add(name)
    # The proofs use the factories, the baseline factory, the sensors, the resources, the
    # component and the model lifecycle; what they leave out the lifecycle builds for the
    # model project itself: the registry, the performance check and the rollback sensor.

    # The late-label and redelivery sensors are proved by their own tests (sensors/).
    # The rest the reference pipeline is built with (test_reference_public_api.py), proved by
    # their own tests (checks/, sensors/, test_audits.py, lifecycle/test_candidate.py) and the
    # reference's.
    assert public - used == {
        "LedgerResource",
        "build_performance_check",
        "build_rollback_on_regression_sensor",
        "build_redeliver_alerts_sensor",
        "build_rejudge_job",
        "build_rejudge_on_mature_labels_sensor",
        "AccessPolicyResource",
        "DelayedLabels",
        "build_alert_on_run_failure_sensor",
        "build_alert_on_stale_asset_sensor",
        "build_audit_verify_job",
        "build_baseline_quality_checks",
        "build_label_collapse_checks",
        "build_label_health_checks",
        "build_reproducible_check",
        "build_staged_rollout_sensor",
        "record_capsule",
        "register_candidate",
    }
