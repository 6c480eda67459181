"""A clone of the GitOps repository that greenops writes proposals into. The only GitPython import.

Per proposal the branch ``greenops/<name>`` is *target + one bot commit*. It is rebuilt on today's
target only when what it proposes changed or it no longer merges cleanly: a target that merely moved
on changes nothing, so an unchanged proposal is never force-pushed. A branch holding anyone else's
commits is never overwritten (``--force-with-lease`` guards against races with the remote as well).
"""

import hashlib
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import git

from controller.confine import unsafe_to_write
from controller.errors import StalledError, TransientError
from controller.redact import redact

BOT_NAME = "greenops"
BOT_EMAIL = "greenops@users.noreply"


@dataclass(frozen=True)
class ProposalResult:
    branch: str
    status: str  # "in-sync" | "unchanged" | "created" | "updated" | "planned" | "held"
    diff: str
    commit: str | None
    humans: tuple[str, ...] = ()  # "held": commits on the branch that greenops did not make


def _git_lines(err: git.GitCommandError) -> list[str]:
    """Git's own message lines (GitPython wraps stderr as ``stderr: '...'``)."""
    lines = [line.strip().removeprefix("stderr:").strip(" '") for line in str(err.stderr or err).splitlines()]
    return [line for line in lines if line and not line.startswith("Cloning into")] or ["git failed"]


def _refuse_unsafe_paths(root: Path, files: Mapping[PurePosixPath, str]) -> None:
    """A committed symlink where greenops writes would send the file outside the clone: stall before
    writing anything."""
    for relative, text in files.items():
        reason = unsafe_to_write(root, relative, deleting=not text)
        if reason is not None:
            raise StalledError(f"cannot write {relative}: {reason}; nothing was written")


class Workspace:
    def __init__(self, url: str, repo: git.Repo, target: str) -> None:
        self.url = url
        self.repo = repo
        self.target = target

    @property
    def root(self) -> Path:
        return Path(self.repo.working_dir)

    @classmethod
    def open(cls, url: str, state_dir: Path, target: str | None = None) -> "Workspace":
        """Clone ``url`` into the state directory (or fetch if cloned before) and check out the target."""
        path = state_dir / "workspaces" / hashlib.sha256(url.encode()).hexdigest()[:16]
        try:
            if (path / ".git").is_dir():
                repo = git.Repo(path)
                repo.remotes.origin.fetch(prune=True)
            else:
                shutil.rmtree(path, ignore_errors=True)
                repo = git.Repo.clone_from(url, path)
        except git.GitCommandError as err:
            detail = redact(url, _git_lines(err)[-1])
            raise StalledError(f"cannot clone or fetch {redact(url, url)}: {detail}; check the URL "
                               "and the credentials") from err
        branch = target or cls._default_branch(repo)
        workspace = cls(url, repo, branch)
        workspace.checkout_target()
        return workspace

    @staticmethod
    def _default_branch(repo: git.Repo) -> str:
        try:
            return str(repo.git.symbolic_ref("refs/remotes/origin/HEAD", short=True)).split("/", 1)[1]
        except git.GitCommandError:
            return "main"

    def _ref(self, branch: str) -> str | None:
        try:
            return str(self.repo.git.rev_parse("--verify", "--quiet", f"refs/remotes/origin/{branch}^{{commit}}"))
        except git.GitCommandError:
            return None

    def checkout_target(self) -> None:
        base = self._ref(self.target)
        if base is None:
            raise StalledError(f"{redact(self.url, self.url)} has no branch {self.target!r}; pass --target-branch")
        self.repo.git.checkout("--force", "--detach", base)
        self.repo.git.clean("-fdx")

    def generated_files(self, folder: PurePosixPath) -> set[PurePosixPath]:
        """Files under ``folder`` on the target branch (read from the commit, whatever the work tree holds)."""
        base = self._ref(self.target)
        listing = self.repo.git.ls_tree("-r", "--name-only", base, "--", str(folder)) if base else ""
        return {PurePosixPath(line) for line in listing.splitlines() if line}

    def read_on_target(self, path: PurePosixPath) -> str | None:
        """The text of ``path`` on the target branch; None when it is not there or is not UTF-8 text."""
        try:
            return str(self.repo.git.show(f"{self._ref(self.target)}:{path}"))
        except (git.GitCommandError, UnicodeDecodeError):
            return None

    def bot_branches(self, prefix: str) -> list[str]:
        """The remote's branches whose names start with ``prefix`` (``greenops/``), as of the last fetch."""
        pattern = f"refs/remotes/origin/{prefix.rstrip('/')}"
        listing = self.repo.git.for_each_ref("--format=%(refname:lstrip=3)", pattern)
        return sorted(line for line in listing.splitlines() if line)

    def humans_on(self, branch: str) -> tuple[str, ...]:
        """Commits on ``branch`` that greenops did not make and that the target does not hold yet."""
        head, base = self._ref(branch), self._ref(self.target)
        if head is None or base is None:
            return ()
        humans = self._human_commits(head, base)
        return () if not humans or self._merged_by_content(head, base) else tuple(humans)

    def delete_branch(self, branch: str, expected: str) -> None:
        """Delete the remote ``branch`` if its tip is still ``expected`` (nobody pushed since greenops looked)."""
        try:
            self.repo.git.push(f"--force-with-lease=refs/heads/{branch}:{expected}", "origin", f":refs/heads/{branch}")
        except git.GitCommandError as err:
            raise TransientError(f"deleting {branch} on {redact(self.url, self.url)} failed: "
                                 f"{redact(self.url, '; '.join(_git_lines(err)))}; the next pass retries") from err
        self.repo.git.update_ref("-d", f"refs/remotes/origin/{branch}")

    def _human_commits(self, branch_sha: str, base: str) -> list[str]:
        commits = self.repo.iter_commits(f"{base}..{branch_sha}")
        return [f"{c.hexsha[:8]} by {c.author.name} <{c.author.email}>" for c in commits
                if c.author.email != BOT_EMAIL or c.committer.email != BOT_EMAIL]

    def propose(self, branch: str, files: Mapping[PurePosixPath, str], message: str, push: bool,
                push_options: Sequence[str] = ()) -> ProposalResult:
        """Put ``files`` on ``branch`` as target + one commit with ``message``; push it with ``push_options``.
        An empty text deletes that file.

        A branch holding anyone else's commits is left alone ("held"). Whatever happens, the clone is
        back on the target afterwards, so one policy's failure never leaks into the next proposal.
        """
        try:
            return self._propose(branch, files, message, push, push_options)
        finally:
            self.checkout_target()

    def _propose(self, branch: str, files: Mapping[PurePosixPath, str], message: str, push: bool,
                 push_options: Sequence[str]) -> ProposalResult:
        self.checkout_target()
        _refuse_unsafe_paths(self.root, files)
        base = self.repo.head.commit.hexsha
        for relative, text in files.items():
            destination = self.root / relative
            if not text:
                destination.unlink(missing_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_text(text, encoding="utf-8")
        self.repo.git.add("--all", "--", *(str(p) for p in files))
        diff = self.repo.git.diff("--cached", base)
        if not diff:
            return ProposalResult(branch, "in-sync", "", None)
        tree = self.repo.git.write_tree()
        remote_sha = self._ref(branch)
        if remote_sha is not None:
            humans = self._human_commits(remote_sha, base)
            if humans and not self._merged_by_content(remote_sha, base):
                return ProposalResult(branch, "held", diff, remote_sha, tuple(humans))
            if self._still_proposes(remote_sha, base, tree):
                return ProposalResult(branch, "unchanged", diff, remote_sha)
        if not push:
            return ProposalResult(branch, "planned", diff, None)
        sha = self._commit(message)
        self._push(branch, sha, remote_sha, push_options)
        return ProposalResult(branch, "updated" if remote_sha else "created", diff, sha)

    def _still_proposes(self, branch_sha: str, base: str, tree: str) -> bool:
        """Whether the bot branch, merged into today's target, gives exactly ``tree`` (target + the files
        proposed now): its one commit sits on an earlier target, it merges cleanly and it changes what the
        proposal changes. Then rebuilding it would push the same proposal again (`git merge-tree` needs
        git 2.38; an older git rebuilds, as a conflict does)."""
        commit = self.repo.commit(branch_sha)
        if len(commit.parents) != 1 or not self.repo.is_ancestor(commit.parents[0], self.repo.commit(base)):
            return False
        try:
            merged = str(self.repo.git.merge_tree("--write-tree", base, branch_sha))
        except git.GitCommandError:  # exit 1: the branch conflicts with the moved target
            return False
        return merged.splitlines()[0] == tree

    def _merged_by_content(self, branch_sha: str, base: str) -> bool:
        """Whether every file the branch changes already has the branch's content on the target: the
        human work was squash- or rebase-merged, so rebuilding the branch loses nothing."""
        try:
            fork = self.repo.git.merge_base(base, branch_sha)
        except git.GitCommandError:  # unrelated histories (a force-pushed branch): nothing was merged
            return False
        changed = self.repo.git.diff("--name-only", fork, branch_sha).splitlines()
        if not changed:
            return True
        try:
            self.repo.git.diff("--quiet", base, branch_sha, "--", *changed)
        except git.GitCommandError:
            return False
        return True

    def _commit(self, message: str) -> str:
        actor = git.Actor(BOT_NAME, BOT_EMAIL)
        commit = self.repo.index.commit(message, author=actor, committer=actor)
        return commit.hexsha

    def merged(self, sha: str) -> bool:
        """Whether commit ``sha`` reached the target branch, as a commit or (squashed) as content."""
        base = self._ref(self.target)
        try:
            return base is not None and (self.repo.is_ancestor(self.repo.commit(sha), self.repo.commit(base))
                                         or self._merged_by_content(sha, base))
        except (git.GitCommandError, ValueError):  # the commit is gone (branch deleted and pruned): not merged
            return False

    def branch_head(self, branch: str) -> str | None:
        return self._ref(branch)

    def _push(self, branch: str, sha: str, expected: str | None, push_options: Sequence[str]) -> None:
        args = [f"--force-with-lease=refs/heads/{branch}:{expected or ''}"]
        for option in push_options:
            args += ["--push-option", option]
        try:
            self.repo.git.push(*args, "origin", f"{sha}:refs/heads/{branch}")
        except git.GitCommandError as err:
            message = redact(self.url, "; ".join(_git_lines(err)))
            if "push options" in message or "push-options" in message:
                raise StalledError(
                    f"{redact(self.url, self.url)} does not accept push options; GitLab does, and a plain "
                    "git remote needs `git config receive.advertisePushOptions true`") from err
            raise TransientError(f"push of {branch} to {redact(self.url, self.url)} failed: {message}; "
                                 "nothing was changed, the next pass retries") from err
        self.repo.remotes.origin.fetch(f"+refs/heads/{branch}:refs/remotes/origin/{branch}")


def seed_remote(remote: Path, files: Mapping[str, bytes], message: str, branch: str = "main") -> None:
    """Create a bare repository at ``remote`` that accepts push options, holding ``files`` in one commit."""
    bare = git.Repo.init(remote, bare=True, initial_branch=branch)
    bare.git.config("receive.advertisePushOptions", "true")
    scratch = remote.with_name(remote.name + ".seed")
    shutil.rmtree(scratch, ignore_errors=True)
    work = git.Repo.init(scratch, initial_branch=branch)
    for name, content in files.items():
        (scratch / name).parent.mkdir(parents=True, exist_ok=True)
        (scratch / name).write_bytes(content)
    work.git.add("--all")
    actor = git.Actor("greenops demo", "demo@greenops.invalid")
    work.index.commit(message, author=actor, committer=actor)
    work.git.push(str(remote.resolve()), f"HEAD:refs/heads/{branch}")
    shutil.rmtree(scratch)
