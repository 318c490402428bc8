"""A fake Hugging Face Hub: a real HTTP server on 127.0.0.1 speaking the endpoints `huggingface_hub` and
`datasets` use to push a dataset repo and to read it back.

Why: the hub export must be tested with the real clients (HfApi.create_commit, datasets.load_dataset) and
without the internet. Repos live in memory as git-like commits (path -> bytes) on branches.

Endpoints: whoami-v2, repos/create, validate-yaml, repo info (by revision too), refs, branch create,
preupload (every file "regular", so contents travel inline as base64 in the commit; no LFS/Xet), commit (NDJSON:
file, deletedFile, deletedFolder; parentCommit checked), tree listing, paths-info, resolve (HEAD/GET, Range).
Auth: `Authorization: Bearer <token>` must be one of the configured tokens (else 401 "Invalid credentials in
Authorization header", as the Hub says); writes need a token whose user may write to the namespace (else 403).
Private repos are invisible (404 RepoNotFound) to anyone who may not write them.

Test hooks: GET /_state (repos, branches, files, commit counts); GET /_log (requests seen, method + path + status);
POST /_race {"repo": "datasets/owner/name", "branch": "main"}: the next preupload to that branch is preceded by
someone else's commit (to test that a push planned against an older head is refused, 412).

Run: python tests/servers/fake_hub.py --config '{"tokens": {"tok": {"user": "alice", "orgs": ["team"]}},
  "repos": [{"repo_id": "bob/locked", "files": {"README.md": "hi"}}]}'  -> prints "LISTENING <url>".
In Python: `with FakeHub(tokens=..., repos=...) as hub: hub.url, hub.state(), hub.log()`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

try:  # run as a script or imported from the tests
    from .process import ServerProcess
except ImportError:
    from process import ServerProcess
from urllib.parse import parse_qs, unquote

from aiohttp import web

INVALID_TOKEN = "Invalid credentials in Authorization header"


def git_blob_oid(content: bytes) -> str:
    """The sha1 git gives a blob: what the client compares to skip unchanged files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    files: dict[str, bytes]
    title: str
    date: str
    parent: str | None


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)

    def commit(self, parent: str | None, files: dict[str, bytes], title: str) -> Commit:
        date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        oid = hashlib.sha1(f"{self.repo_id}{parent}{title}{date}{len(self.commits)}".encode()).hexdigest()
        commit = Commit(oid, files, title, date, parent)
        self.commits[oid] = commit
        return commit

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision, revision)
        if oid in self.commits:
            return self.commits[oid]
        return next((c for o, c in self.commits.items() if len(revision) >= 7 and o.startswith(revision)), None)


def _error(status: int, message: str, code: str | None = None) -> web.Response:
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return web.json_response({"error": message}, status=status, headers=headers)


class HubServer:
    def __init__(self, tokens: dict[str, dict], repos: list[dict]):
        self.tokens = tokens  # token -> {"user": name, "orgs": [...], "read_only": bool}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.log: list[dict] = []
        self.races: set[tuple[str, str]] = set()  # (repo key, branch) whose next preupload meets a rival commit
        for spec in repos:
            repo = self._create(spec.get("repo_type", "dataset"), spec["repo_id"], bool(spec.get("private")))
            files = {p: (c.encode() if isinstance(c, str) else c) for p, c in (spec.get("files") or {}).items()}
            if files:
                repo.branches["main"] = repo.commit(repo.branches["main"], files, "seed").oid

    def _create(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        repo = Repo(repo_id, repo_type, private)
        first = repo.commit(None, {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"}, "initial commit")
        repo.branches["main"] = first.oid
        self.repos[(repo_type, repo_id)] = repo
        return repo

    # --- auth -------------------------------------------------------------------------------------------------

    def _user(self, request: web.Request) -> tuple[dict | None, web.Response | None]:
        header = request.headers.get("Authorization", "")
        if not header:
            return None, None
        token = header.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            return None, _error(401, INVALID_TOKEN)
        return self.tokens[token], None

    @staticmethod
    def _may_write(user: dict | None, repo_id: str) -> bool:
        if user is None or user.get("read_only"):
            return False
        return repo_id.split("/")[0] in [user["user"], *user.get("orgs", [])]

    # --- dispatch ---------------------------------------------------------------------------------------------

    ROUTES = [
        ("GET", r"/api/whoami-v2", "whoami"),
        ("POST", r"/api/repos/create", "create_repo"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("GET", r"/api/(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)", "repo_info"),
        ("GET", r"/api/(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>[^/]+)", "repo_info"),
        ("GET", r"/api/(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)/refs", "refs"),
        ("POST", r"/api/(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)/branch/(?P<rev>[^/]+)", "create_branch"),
        ("POST", r"/api/(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)", "preupload"),
        ("POST", r"/api/(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)", "commit"),
        ("GET", r"/api/(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
        ("POST", r"/api/(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)/paths-info/(?P<rev>[^/]+)", "paths_info"),
        ("HEAD", r"/(?P<type>dataset|space)s/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
        ("GET", r"/(?P<type>dataset|space)s/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
        ("GET", r"/_state", "state"),
        ("GET", r"/_log", "get_log"),
        ("POST", r"/_race", "race"),
    ]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # Match on the raw path, then unquote each part: a revision like "refs%2Fpr%2F1" stays one segment.
        raw = request.raw_path.split("?", 1)[0]
        for method, pattern, name in self.ROUTES:
            match = re.fullmatch(pattern, raw)
            if match and method == request.method:
                args = {k: unquote(v) if v is not None else None for k, v in match.groupdict().items()}
                if not name.startswith(("state", "get_log", "race")):
                    user, denied = self._user(request)
                    if denied is not None:
                        response = denied
                    else:
                        response = await getattr(self, name)(request, user, **args)
                else:
                    response = await getattr(self, name)(request)
                self.log.append({"method": request.method, "path": raw, "status": response.status})
                return response
        self.log.append({"method": request.method, "path": raw, "status": 404})
        return _error(404, f"fake hub: no route for {request.method} {raw}")

    def _visible(self, user, repo_type: str, repo_id: str) -> Repo | None:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self._may_write(user, repo_id)):
            return None
        return repo

    def _repo_or_404(self, user, repo_type, repo_id):
        repo = self._visible(user, repo_type, repo_id)
        return repo, (None if repo else _error(404, "Repository not found", "RepoNotFound"))

    def _commit_or_404(self, repo: Repo, rev: str):
        commit = repo.resolve(rev)
        return commit, (None if commit else _error(404, f"Invalid rev id: {rev}", "RevisionNotFound"))

    def _revision_or_404(self, user, repo_type, repo_id, rev):
        """The repo and the commit `rev` names, or the 404 the Hub would answer."""
        repo, err = self._repo_or_404(user, repo_type, repo_id)
        if err:
            return None, None, err
        commit, err = self._commit_or_404(repo, rev)
        return repo, commit, err

    # --- endpoints --------------------------------------------------------------------------------------------

    async def whoami(self, request, user):
        if user is None:
            return _error(401, INVALID_TOKEN)
        role = "read" if user.get("read_only") else "write"
        return web.json_response({"type": "user", "name": user["user"], "fullname": user["user"],
                                  "orgs": [{"name": o, "type": "org"} for o in user.get("orgs", [])],
                                  "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": role}}})

    async def create_repo(self, request, user):
        body = await request.json()
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or (user or {}).get('user')}/{body['name']}"
        if user is None:
            return _error(401, "You must be authenticated to create a repo")
        url = f"{request.url.origin()}/{repo_type + 's/' if repo_type != 'model' else ''}{repo_id}"
        if not self._may_write(user, repo_id):
            return _error(403, f"You don't have the rights to create a {repo_type} under the namespace "
                               f"\"{repo_id.split('/')[0]}\"")
        if (repo_type, repo_id) in self.repos:
            return web.json_response({"error": "You already created this repo", "url": url}, status=409)
        private = body.get("visibility") == "private" or bool(body.get("private"))
        self._create(repo_type, repo_id, private)
        return web.json_response({"url": url, "name": repo_id, "id": repo_id})

    async def validate_yaml(self, request, user):
        body = await request.json()
        content = body.get("content", "")
        if not content.startswith("---\n"):
            return web.json_response({"errors": [], "warnings": [{"message": "empty or missing yaml metadata"}]})
        return web.json_response({"errors": [], "warnings": []})

    async def repo_info(self, request, user, type, repo, rev="main"):
        found, commit, err = self._revision_or_404(user, type, repo, rev)
        if err:
            return err
        return web.json_response({
            "_id": hashlib.md5(repo.encode()).hexdigest()[:24], "id": repo, "author": repo.split("/")[0],
            "sha": commit.oid, "private": found.private, "disabled": False, "gated": False, "downloads": 0,
            "likes": 0, "tags": [], "lastModified": commit.date, "createdAt": commit.date,
            "siblings": [{"rfilename": p} for p in sorted(commit.files)]})

    async def refs(self, request, user, type, repo):
        found, err = self._repo_or_404(user, type, repo)
        if err:
            return err
        branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": o} for n, o in found.branches.items()]
        return web.json_response({"branches": branches, "converts": [], "tags": []})

    async def create_branch(self, request, user, type, repo, rev):
        found, err = self._repo_or_404(user, type, repo)
        if err:
            return err
        if not self._may_write(user, repo):
            return _error(403, "You don't have write access to this repo")
        if rev.startswith("refs/") or not re.fullmatch(r"[\w.\-/]+", rev):
            return _error(400, f"Invalid reference for a branch: {rev}")
        if rev in found.branches:
            return _error(409, f"Reference already exists: refs/heads/{rev}")
        body = await request.json() if request.can_read_body else {}
        start, err = self._commit_or_404(found, (body or {}).get("startingPoint") or "main")
        if err:
            return err
        found.branches[rev] = start.oid
        return web.json_response({})

    def _writable_branch(self, user, type, repo, rev):
        found, err = self._repo_or_404(user, type, repo)
        if err:
            return None, None, err
        if not self._may_write(user, repo):
            return None, None, _error(403, f"You don't have write access to {type}s/{repo}" if user else
                                      "You must be authenticated to write", None)
        if rev not in found.branches:
            return None, None, _error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return found, found.commits[found.branches[rev]], None

    async def preupload(self, request, user, type, repo, rev):
        found, head, err = self._writable_branch(user, type, repo, rev)
        if err:
            return err
        if (f"{type}s/{repo}", rev) in self.races:
            self.races.discard((f"{type}s/{repo}", rev))
            head = found.commit(head.oid, {**head.files, "rival.txt": b"pushed meanwhile"}, "rival push")
            found.branches[rev] = head.oid
        body = await request.json()
        return web.json_response({"files": [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
             "oid": git_blob_oid(head.files[f["path"]]) if f["path"] in head.files else None}
            for f in body["files"]]})

    async def commit(self, request, user, type, repo, rev):
        found, head, err = self._writable_branch(user, type, repo, rev)
        if err:
            return err
        lines = [json.loads(line) for line in (await request.read()).splitlines() if line.strip()]
        header = next((item["value"] for item in lines if item["key"] == "header"), None)
        if not header or not header.get("summary"):
            return _error(400, "commit header with a summary is required")
        parent = header.get("parentCommit")
        if parent and not head.oid.startswith(parent):
            return _error(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for item in lines:
            key, value = item["key"], item["value"]
            if key == "file":
                if value.get("encoding") != "base64":
                    return _error(400, "only base64 file contents are supported")
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if value["path"] not in files:
                    return _error(404, "A file with this name doesn't exist", "EntryNotFound")
                del files[value["path"]]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: c for p, c in files.items() if not p.startswith(prefix)}
            elif key != "header":
                return _error(400, f"fake hub: unsupported commit operation {key}")
        commit = found.commit(head.oid, files, header["summary"])
        found.branches[rev] = commit.oid  # the whole commit becomes visible at once
        prefix = "" if type == "model" else f"{type}s/"
        return web.json_response({"success": True, "commitOid": commit.oid, "pullRequestUrl": None,
                                  "commitUrl": f"{request.url.origin()}/{prefix}{repo}/commit/{commit.oid}"})

    def _entries(self, commit: Commit, paths: list[str] | None, folder: str, recursive: bool) -> list[dict]:
        """Tree entries: the files (and implied folders) under folder, or exactly the given paths."""
        folders: set[str] = {str(Path(p).parent) for p in commit.files}
        for f in list(folders):
            while f not in (".", ""):
                folders.add(f)
                f = str(Path(f).parent)
        folders.discard(".")

        def file_entry(p: str) -> dict:
            content = commit.files[p]
            return {"type": "file", "path": p, "size": len(content), "oid": git_blob_oid(content),
                    "lastCommit": {"id": commit.oid, "title": commit.title, "date": commit.date}}

        def folder_entry(p: str) -> dict:
            return {"type": "directory", "path": p, "oid": hashlib.sha1(p.encode()).hexdigest(), "size": 0}

        if paths is not None:
            return [file_entry(p) if p in commit.files else folder_entry(p) for p in paths
                    if p in commit.files or p in folders]
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""

        def wanted(p: str) -> bool:
            return p.startswith(prefix) and (recursive or "/" not in p[len(prefix):])

        return ([folder_entry(f) for f in sorted(folders) if wanted(f)] +
                [file_entry(p) for p in sorted(commit.files) if wanted(p)])

    async def tree(self, request, user, type, repo, rev, path=None):
        found, commit, err = self._revision_or_404(user, type, repo, rev)
        if err:
            return err
        folder = (path or "").strip("/")
        recursive = request.query.get("recursive", "false").lower() in ("1", "true")
        if folder and folder not in {str(Path(p).parent) for p in commit.files} and \
                not any(p.startswith(folder + "/") for p in commit.files):
            return _error(404, f"{folder} does not exist on {rev}", "EntryNotFound")
        return web.json_response(self._entries(commit, None, folder, recursive))

    async def paths_info(self, request, user, type, repo, rev):
        found, commit, err = self._revision_or_404(user, type, repo, rev)
        if err:
            return err
        raw = await request.read()
        if request.content_type == "application/json":
            paths = json.loads(raw).get("paths", [])
        else:
            paths = parse_qs(raw.decode()).get("paths", [])
        return web.json_response(self._entries(commit, [p.strip("/") for p in paths], "", False))

    async def resolve(self, request, user, type, repo, rev, path):
        found, commit, err = self._revision_or_404(user, type, repo, rev)
        if err:
            return err
        if path not in commit.files:
            return _error(404, "Entry not found", "EntryNotFound")
        content = commit.files[path]
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{git_blob_oid(content)}"', "Accept-Ranges": "bytes"}
        status = 200
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", request.headers.get("Range", ""))
        if match:
            start = int(match.group(1)) if match.group(1) else max(0, len(content) - int(match.group(2)))
            end = int(match.group(2)) if match.group(1) and match.group(2) else len(content) - 1
            end = min(end, len(content) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            content, status = content[start:end + 1], 206
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(content))
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, body=content, headers=headers)

    # --- test hooks -------------------------------------------------------------------------------------------

    async def state(self, request):
        out = {}
        for (repo_type, repo_id), repo in self.repos.items():
            out[f"{repo_type}s/{repo_id}"] = {
                "private": repo.private,
                "commits": len(repo.commits),
                "branches": {name: {"oid": oid, "title": repo.commits[oid].title,
                                    "files": {p: len(c) for p, c in sorted(repo.commits[oid].files.items())}}
                             for name, oid in repo.branches.items()}}
        return web.json_response(out)

    async def get_log(self, request):
        return web.json_response(self.log)

    async def race(self, request):
        body = await request.json()
        self.races.add((body["repo"], body.get("branch", "main")))
        return web.json_response({})


def serve(host: str, port: int, config: dict, exit_on_stdin_eof: bool = False) -> None:
    import asyncio
    import os
    import threading

    if exit_on_stdin_eof:  # the test process died without stopping us: do not linger
        threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()

    server = HubServer(config.get("tokens", {}), config.get("repos", []))
    app = web.Application(client_max_size=256 * 1024 ** 2)
    app.router.add_route("*", "/{tail:.*}", server.handle)

    async def main():
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]
        print(f"LISTENING http://{host}:{bound}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class FakeHub(ServerProcess):
    """Starts the server as a subprocess; `url` is what HF_ENDPOINT should be."""

    def __init__(self, tokens: dict[str, dict] | None = None, repos: list[dict] | None = None, host: str = "127.0.0.1"):
        config = json.dumps({"tokens": tokens or {}, "repos": repos or []})
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--host", host, "--port", "0",
                                         "--config", config, "--exit-on-stdin-eof"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("LISTENING "):
            self.process.kill()
            raise RuntimeError(f"fake hub did not start: {line!r}")
        self.url = line.split()[1]

    def _get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def state(self) -> dict:
        return self._get("/_state")

    def log(self) -> list[dict]:
        return self._get("/_log")

    def race(self, repo: str, branch: str = "main") -> None:
        request = urllib.request.Request(self.url + "/_race", data=json.dumps({"repo": repo, "branch": branch}).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()



if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--config", default="{}", help="JSON: {tokens: {TOKEN: {user, orgs}}, repos: [...]}")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="exit when stdin closes (the parent died)")
    args = parser.parse_args()
    serve(args.host, args.port, json.loads(args.config), args.exit_on_stdin_eof)
