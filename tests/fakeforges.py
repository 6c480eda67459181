"""FAKE GitHub and GitLab REST servers for the tests: SaaS APIs that cannot run here.

Each serves, on loopback, only the documented endpoints greenops uses, with the documented shapes:
- GitHub (docs.github.com/rest/pulls): GET/POST /repos/{owner}/{repo}/pulls, GET/PATCH .../pulls/{n}
  (title, body, state ``closed``),
  POST (add) and PUT (replace) /repos/{owner}/{repo}/issues/{n}/labels, POST .../issues/{n}/comments;
  ``Authorization: token``.
- GitLab (docs.gitlab.com/api/merge_requests, /api/notes): GET and POST /api/v4/projects/{id}/merge_requests
  (409 when the source branch already has an open one), PUT .../merge_requests/{iid} (title, description,
  ``state_event=close``), POST .../merge_requests/{iid}/notes;
  ``PRIVATE-TOKEN``. Real GitLab also creates merge requests from push options, which the fake cannot
  see: tests add those with ``add_gitlab_merge_request``.
Everything each fake received is kept (``requests``) so tests can scan it.
"""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class FakeForgeState:
    token: str
    base: str = ""
    pulls: list[dict[str, Any]] = field(default_factory=list)
    comments: list[tuple[int, str]] = field(default_factory=list)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, body
    fail_next_post: bool = False  # answer the next POST with 502, as an overloaded forge does


class _Handler(BaseHTTPRequestHandler):
    state: FakeForgeState

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        text = self.rfile.read(length).decode() if length else ""
        self.state.requests.append((self.command, self.path, text))
        parsed = json.loads(text) if text else {}
        return parsed if isinstance(parsed, dict) else {"labels": parsed}  # PUT labels may send a bare array

    def _send(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        body = self._body()
        if self.command == "POST" and self.state.fail_next_post:
            self.state.fail_next_post = False
            self._send(502, {"message": "Bad Gateway"})
            return
        if not self._authorised():  # echoes what it got, as a careless proxy might: greenops must not repeat it
            presented = self.headers.get("Authorization") or self.headers.get("PRIVATE-TOKEN")
            self._send(401, {"message": f"Bad credentials: {presented}"})
            return
        self.route(urlsplit(self.path), body)

    def route(self, url: Any, body: dict[str, Any]) -> None:
        raise NotImplementedError


class _GitHubHandler(_Handler):
    def _authorised(self) -> bool:
        return self.headers.get("Authorization", "") in (f"token {self.state.token}", f"Bearer {self.state.token}")

    def _pull_json(self, pull: dict[str, Any], single: bool = False) -> dict[str, Any]:
        """The list endpoint has no ``merged``; GET of one pull request has it."""
        repo = f"{self.state.base}/repos/{pull['repo']}"
        merged = {"merged": pull["merged_at"] is not None} if single else {}
        return {**{k: v for k, v in pull.items() if k != "repo"}, **merged, "url": f"{repo}/pulls/{pull['number']}",
                "issue_url": f"{repo}/issues/{pull['number']}", "html_url": f"https://github.invalid/{pull['repo']}"
                f"/pull/{pull['number']}", "id": pull["number"]}

    def route(self, url: Any, body: dict[str, Any]) -> None:
        parts = url.path.strip("/").split("/")
        if len(parts) < 4 or parts[0] != "repos":
            self._send(404, {"message": "Not Found"})
            return
        repo, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        pulls = [p for p in self.state.pulls if p["repo"] == repo]
        if rest == ["pulls"] and self.command == "GET":
            query = parse_qs(url.query)
            head = query.get("head", [""])[0]
            found = [p for p in pulls if not head or f"{repo.split('/')[0]}:{p['head']['ref']}" == head]
            state = query.get("state", ["open"])[0]
            found = [p for p in found if state == "all" or p["state"] == state]
            self._send(200, [self._pull_json(p) for p in sorted(found, key=lambda p: -p["number"])])
        elif rest == ["pulls"] and self.command == "POST":
            if any(p["state"] == "open" and p["head"]["ref"] == body["head"] for p in pulls):
                self._send(422, {"message": "Validation Failed", "errors": [{"message": "A pull request already "
                                                                                  "exists"}]})
                return
            pull = {"repo": repo, "number": len(self.state.pulls) + 1, "state": "open", "merged_at": None,
                    "title": body["title"], "body": body.get("body", ""), "draft": bool(body.get("draft")),
                    "head": {"ref": body["head"], "sha": "0" * 40, "label": body["head"]},
                    "base": {"ref": body["base"]}, "labels": []}
            self.state.pulls.append(pull)
            self._send(201, self._pull_json(pull, single=True))
        elif (len(rest) == 2 and rest[0] in ("pulls", "issues") and rest[1].isdigit()) or \
                (len(rest) == 3 and rest[0] == "issues"):
            self._one(pulls, rest, body)
        else:
            self._send(404, {"message": "Not Found"})

    def _one(self, pulls: list[dict[str, Any]], rest: list[str], body: dict[str, Any]) -> None:
        pull = next((p for p in pulls if p["number"] == int(rest[1])), None)
        if pull is None:
            self._send(404, {"message": "Not Found"})
        elif len(rest) == 2 and self.command == "PATCH":
            pull.update({k: body[k] for k in ("title", "body", "state") if k in body})
            self._send(200, self._pull_json(pull, single=True))
        elif len(rest) == 2:
            self._send(200, self._pull_json(pull, single=True))
        elif rest[2] == "labels":
            kept = [label["name"] for label in pull["labels"]] if self.command == "POST" else []
            names = kept + [name for name in body.get("labels", []) if name not in kept]
            pull["labels"] = [{"name": name} for name in names]
            self._send(200, pull["labels"])
        elif rest[2] == "comments":
            self.state.comments.append((pull["number"], body["body"]))
            self._send(201, {"id": len(self.state.comments), "body": body["body"]})
        else:
            self._send(404, {"message": "Not Found"})


class _GitLabHandler(_Handler):
    def _authorised(self) -> bool:
        return self.headers.get("PRIVATE-TOKEN") == self.state.token

    def route(self, url: Any, body: dict[str, Any]) -> None:
        parts = url.path.strip("/").split("/")
        if parts[:3] != ["api", "v4", "projects"] or len(parts) < 5:
            self._send(404, {"message": "404 Not Found"})
            return
        project, rest = unquote(parts[3]), parts[4:]
        requests = [p for p in self.state.pulls if p["project"] == project]
        if rest == ["merge_requests"] and self.command == "GET":
            branch = parse_qs(url.query).get("source_branch", [None])[0]
            found = sorted((p for p in requests if branch in (None, p["source_branch"])), key=lambda p: -p["iid"])
            per_page = int(parse_qs(url.query).get("per_page", ["20"])[0])
            self._send(200, found[:per_page])
        elif rest == ["merge_requests"] and self.command == "POST":
            if any(p["source_branch"] == body["source_branch"] and p["state"] == "opened" for p in requests):
                self._send(409, {"message": ["Another open merge request already exists for this source branch"]})
                return
            created = self.merge_request(project, len(self.state.pulls) + 1, body["source_branch"], "opened",
                                         body.get("description", ""))
            created.update(title=body["title"], labels=str(body.get("labels", "")).split(","))
            self.state.pulls.append(created)
            self._send(201, created)
        elif len(rest) == 2 and rest[0] == "merge_requests" and self.command == "PUT":
            found = next((p for p in requests if p["iid"] == int(rest[1])), None)
            if found is None:
                self._send(404, {"message": "404 Not found"})
                return
            found.update({k: body[k] for k in ("title", "description") if k in body})
            if body.get("state_event") == "close":
                found["state"] = "closed"
            self._send(200, found)
        elif len(rest) == 3 and rest[0] == "merge_requests" and rest[2] == "notes" and self.command == "POST":
            self.state.comments.append((int(rest[1]), body["body"]))
            self._send(201, {"id": len(self.state.comments), "body": body["body"]})
        else:
            self._send(404, {"message": "404 Not Found"})

    @staticmethod
    def merge_request(project: str, iid: int, branch: str, state: str, description: str) -> dict[str, Any]:
        return {"iid": iid, "id": 1000 + iid, "project_id": 1, "project": project, "source_branch": branch,
                "target_branch": "main", "state": state, "title": f"proposal {iid}", "description": description,
                "web_url": f"https://gitlab.invalid/{project}/-/merge_requests/{iid}", "draft": False,
                "sha": "0" * 40, "labels": []}


@contextmanager
def fake_forge(kind: str, token: str) -> Iterator[FakeForgeState]:
    """Start the fake GitHub (``github``) or GitLab (``gitlab``) on loopback; always stopped."""
    state = FakeForgeState(token)
    handler = type("Handler", (_GitHubHandler if kind == "github" else _GitLabHandler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def add_gitlab_merge_request(state: FakeForgeState, project: str, branch: str, merge_state: str,
                             description: str) -> None:
    iid = len(state.pulls) + 1
    state.pulls.append(_GitLabHandler.merge_request(project, iid, branch, merge_state, description))
