"""Git write-back safety: one policy's failed push never leaks into another policy's branch."""

from pathlib import Path, PurePosixPath

import pytest

from controller.errors import TransientError
from controller.gitops.workspace import Workspace
from controller.redact import redact

from .conftest import git, make_remote

A = PurePosixPath("manifests/generated/team-a/a.cronjob.yaml")
B = PurePosixPath("manifests/generated/team-b/b.cronjob.yaml")


def test_failed_push_leaves_the_clone_clean_for_the_next_policy(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {"README.md": "gitops\n"})
    hook = remote / "hooks" / "pre-receive"
    hook.write_text('#!/bin/sh\nwhile read old new ref; do [ "$ref" = refs/heads/greenops/a ] && '
                    '{ echo "rejected $ref" >&2; exit 1; }; done\nexit 0\n')
    workspace = Workspace.open(str(remote), tmp_path / "state")
    with pytest.raises(TransientError, match="rejected refs/heads/greenops/a"):
        workspace.propose("greenops/a", {A: "a: 1\n"}, "a\n\nbody a", push=True)
    assert workspace.generated_files(PurePosixPath("manifests/generated")) == set()
    assert not (workspace.root / A).exists() and git("status", "--porcelain", cwd=workspace.root) == ""

    result = workspace.propose("greenops/b", {B: "b: 1\n"}, "b\n\nbody b", push=True)
    assert result.status == "created"
    files = git("ls-tree", "-r", "--name-only", "greenops/b", cwd=remote).split()
    assert files == ["README.md", str(B)]


@pytest.mark.parametrize(("url", "text", "expected"), [
    ("https://bot:s3cr3t-token@git.example.com/x.git", "fatal: https://bot:s3cr3t-token@git.example.com/x.git",
     "fatal: https://***@git.example.com/x.git"),
    ("https://glpat-abcdef@git.example.com/x.git", "auth failed for glpat-abcdef@git.example.com",
     "auth failed for ***@git.example.com"),
    ("ssh://git@127.0.0.1/digital/repo.git", "ssh://git@127.0.0.1/digital/repo.git",
     "ssh://***@127.0.0.1/digital/repo.git"),
    ("postgresql://mlflow:pa55word@db/mlflow", "error: password pa55word rejected", "error: password *** rejected"),
    ("/srv/git/repo.git", "nothing to hide in /srv/git/repo.git", "nothing to hide in /srv/git/repo.git"),
])
def test_redaction_masks_credentials_only(url: str, text: str, expected: str) -> None:
    assert redact(url, text) == expected
