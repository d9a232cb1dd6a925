"""What a config reload changes, alone (no processes): the children sorted by name into
added, removed, changed and unchanged, and the [bus] and [supervisor] keys only a restart of
the system applies."""

from pathlib import Path

import pytest

from tickmesh.supervisor import config
from tickmesh.supervisor.config import ChildConfig
from tickmesh.supervisor.reload import Changes, diff, fixed_changes

# fixed ports (the demo's, the metrics port): never two such tests at once (pytest -n)
pytestmark = pytest.mark.xdist_group("fixed_ports")


def load(directory: Path, text: str) -> config.Config:
    path = directory / "tickmesh.toml"
    path.write_text(text)
    return config.load(path)


def test_children_are_sorted_by_name_in_the_new_order():
    old = [ChildConfig("a", "m"), ChildConfig("b", "m"), ChildConfig("c", "m", settings={"x": 1})]
    new = [ChildConfig("d", "m"), ChildConfig("c", "m", settings={"x": 2}), ChildConfig("a", "m")]
    changes = diff(old, new)
    assert changes == Changes(added=("d",), removed=("b",), changed=("c",), unchanged=("a",))
    assert changes.to_dict() == {"added": ["d"], "removed": ["b"], "changed": ["c"],
                                 "unchanged": ["a"]}


@pytest.mark.parametrize("field, value", [
    ("run", "other.module"), ("restart", "temporary"), ("max_restarts", 1),
    ("within_seconds", 5.0), ("shutdown_timeout", 1.0), ("after", ("b",)),
    ("ready_timeout", 1.0), ("settings", {"symbol": "NEW"}),
])
def test_any_field_that_differs_changes_a_child(field, value):
    before = ChildConfig("a", "m", settings={"symbol": "OLD"})
    after = ChildConfig(**{**before.__dict__, field: value})
    assert diff([before], [after]).changed == ("a",)


def test_the_same_children_are_unchanged():
    children = [ChildConfig("a", "m", settings={"nested": {"x": [1, 2]}}), ChildConfig("b", "m")]
    same = [ChildConfig("a", "m", settings={"nested": {"x": [1, 2]}}), ChildConfig("b", "m")]
    assert diff(children, same) == Changes((), (), (), ("a", "b"))


def test_bus_and_supervisor_keys_that_differ_are_named(tmp_path):
    child = '[[children]]\nname = "a"\nrun = "m"\n'
    old = load(tmp_path, child)
    new = load(tmp_path, '[bus]\nhwm = 5\n[supervisor]\nlog_backups = 9\n'
                         'metrics = "127.0.0.1:9108"\n' + child)
    assert fixed_changes(old, new) == ["bus.hwm", "supervisor.metrics", "supervisor.log_backups"]


def test_children_alone_are_no_fixed_change(tmp_path):
    old = load(tmp_path, '[[children]]\nname = "a"\nrun = "m"\n')
    new = load(tmp_path, '[[children]]\nname = "b"\nrun = "m"\nrestart = "temporary"\n')
    assert fixed_changes(old, new) == []
