"""Result files record the commit of the code that ran, even when the checkout moves on during a long run."""
from __future__ import annotations

import grpo.provenance as provenance_module


def test_the_commit_is_the_one_the_code_was_loaded_at(monkeypatch):
    pinned = provenance_module.provenance()["commit"]
    monkeypatch.setattr(provenance_module, "git_commit", lambda: "moved-on")
    assert provenance_module.provenance()["commit"] == pinned != "moved-on"
    assert provenance_module.provenance({"seed": 0})["config"] == {"seed": 0}


def test_result_files_say_which_machine_they_ran_on():
    """The CPU kind decides bf16's speed and numbers: it is in every provenance record, bf16 as the check says."""
    import policy.precision

    record = provenance_module.provenance()["machine"]
    assert record["cpu"] and record["cpu_cores"] >= 1 and record["torch"]
    assert record["cpu_bf16_native"] == policy.precision.cpu_has_bf16_kernels()
    assert set(record["cpu_flags"]) <= {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
