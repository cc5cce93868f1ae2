"""Result files record the commit of the code that ran, even when the checkout moves on during a long run."""
from __future__ import annotations

import grpo.provenance as provenance_module


def test_the_commit_is_the_one_the_code_was_loaded_at(monkeypatch):
    pinned = provenance_module.provenance()["commit"]
    monkeypatch.setattr(provenance_module, "git_commit", lambda: "moved-on")
    assert provenance_module.provenance()["commit"] == pinned != "moved-on"
    assert provenance_module.provenance({"seed": 0})["config"] == {"seed": 0}
