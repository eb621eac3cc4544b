"""The variants matrix (tox -e variants): each variant a run of its own, its claims counted and
the ones not held listed with their reasons. FAKE pytest: writes a claims.json per run."""

from __future__ import annotations

import json
from pathlib import Path

from clusterproof import variants


def claims_json(path: Path, claims: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run_id": path.parent.parent.name, "claims": claims}))


def claim(id_, verdict, reason="", outcome="passed"):
    return {"id": id_, "verdict": verdict, "reason": reason, "tests": [{"nodeid": f"t::{id_}", "outcome": outcome}]}


def test_every_variant_has_its_kind_config_and_its_modules():
    fixtures = Path(__file__).parent.parent / "fixtures"
    for v in variants.VARIANTS:
        if v.kind_config == "one-node.yaml" and not (fixtures / "kind" / v.kind_config).exists():
            continue  # the single-node config comes with #24 item 10
        assert (fixtures / "kind" / v.kind_config).is_file(), v.kind_config
        for module in v.modules:
            assert (fixtures.parent / "suites" / f"test_{module}.py").is_file(), module


def test_the_matrix_counts_the_claims_that_ran_and_lists_what_was_not_held(tmp_path):
    asked = []

    def fake_pytest(args):
        asked.append(args)
        claims_json(
            Path(args[args.index("--artifacts-dir") + 1]) / "claims.json",
            [
                claim("SVC-12", "held"),
                claim("SVC-15", "held"),
                claim("SVC-18", "skipped", "Services are implemented by DaemonSet cilium", "skipped"),
                claim("ING-01", "failed", "no Running controller pod", "failed"),
                {"id": "VOL-01", "verdict": "not run", "reason": "", "tests": []},
            ],
        )
        return 1, None

    variant = variants.VARIANTS[0]
    row = variants.run_variant(variant, ["--offline", "yes"], Path("fixtures"), pytest=fake_pytest, runs=tmp_path)
    assert asked[0][:2] == ["--kind-config", "fixtures/kind/dns-domain.yaml"]
    assert asked[0][-2:] == ["--offline", "yes"]
    assert row.counts == {"held": 2, "skipped": 1, "failed": 1} and row.failed
    lines = variants.table([row])
    assert lines[1].split()[:4] == ["dns-domain", "2", "held,", "1"]
    assert "    FAILED   ING-01: no Running controller pod" in lines
    assert "    SKIPPED  SVC-18: Services are implemented by DaemonSet cilium" in lines


def test_a_run_without_claims_json_is_a_failed_row(tmp_path):
    row = variants.run_variant(
        variants.VARIANTS[-1], [], Path("fixtures"), pytest=lambda args: (2, None), runs=tmp_path
    )
    assert row.failed and row.note.startswith("no claims.json (exit 2)")


def test_unknown_variants_are_one_line(capsys):
    said = []
    assert variants.main(["--only", "ipv7"], say=said.append) == 2
    assert said == [f"variants: unknown variant ipv7 (known: {', '.join(v.name for v in variants.VARIANTS)})"]
