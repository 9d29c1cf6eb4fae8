"""What the Prefect UI says about each deployment: markdown, in three parts (what it does, what it freezes, how to
undo it). `shiftover serve` (deployments/catalogue.py) sets these; deployments/prefect.yaml carries the same texts
(tests/test_forms.py compares them).

The texts are wrapped here for reading and unwrapped for the UI, whose markdown renderer turns every line break into
a break on the page: one line per paragraph and per list item."""

from __future__ import annotations


def unwrap(text: str) -> str:
    """`text` with each paragraph and each `- ` list item on one line."""
    lines: list[str] = []
    for line in text.strip().splitlines():
        line = line.strip()
        if not line or not lines or not lines[-1] or line.startswith("- "):
            lines.append(line)
        else:
            lines[-1] += " " + line
    return "\n".join(lines) + "\n"


_WRAPPED: dict[str, str] = {
    "health-sweep": """\
Probes every provider in backends.yaml at once and records each probe in the health history.

- **Does:** a real round trip per provider (connect, read, and a canary write where `health.canary` allows), a
  table artifact of the results, and a `shiftover.provider.*` event when a provider's state changes.
- **Freezes:** nothing. It writes only the canary record and the health history.
- **Undo:** nothing to undo. Failover is decided by the monitor of `shiftover serve` and the failover policy.
""",
    "sync": """\
Copies the changes made on the active provider to every standby, so a failover loses as little as possible.

- **Does:** one pass through the primary's change capture (or `updated_at` watermarks), writing each standby; a new
  or stale standby is first copied in full. It records the lag per standby and collection.
- **Freezes:** nothing. It holds a lease on the primary and the standbys: a migration of them waits or is refused
  meanwhile, and a standby that a running migration writes to is skipped.
- **Undo:** nothing to undo on the active provider; a standby is overwritten by the next pass.
""",
    "failover": """\
Moves the application to the best healthy standby (or the one named in `to`) and fences the old primary.

- **Does:** ranks the standbys (healthy, in sync, priority, least lag), fences the old primary, copies its last
  changes if it still answers, and switches the active-backend pointer by compare-and-swap. Markdown artifact and a
  `shiftover.backend.switched` event. `dry_run` only says what it would do.
- **Freezes:** the old primary's writes (a freeze flag, and its engine's write fence where it answers), from the
  switch on.
- **Undo:** once the old primary is healthy and synced again, run this deployment with `to` set to it; its fence is
  lifted when it becomes the target. `shiftover unfreeze PROVIDER` lifts a fence by hand.
""",
    "migrate": """\
Copies one provider to another and cuts over only when the Great Expectations suites prove the target holds the
same records.

- **Does:** by `strategy`: *immediate* freezes, copies, validates and switches; *blue_green* copies while the
  application writes, catches up, freezes briefly for the final delta, validates and switches; *gradual* copies a
  few chunks per run and cuts over collection by collection. Markdown and table artifacts, and an HTML report
  beside backends.yaml. `dry_run` prints the plan and changes nothing.
- **Freezes:** writes to the source's collections while the copy is checked (immediate: the whole copy;
  blue_green: the final delta; gradual: each collection as it moves). After a blue_green cutover the old primary
  stays write-fenced so it can take the cutover back.
- **Undo:** a run that fails or is blocked lifts its freeze and leaves the pointer and the source as they were; a
  re-run resumes. After a blue_green cutover, `shiftover rollback` copies the target's new writes back and moves the
  pointer back; `shiftover release SOURCE` ends it for good. After an immediate cutover, migrate back with source
  and target swapped.
""",
    "full-test-suite": """\
Runs the cross-provider test suite: connection, CRUD, auth, storage, performance, load and migration tests per
provider.

- **Does:** each test in scratch collections that are dropped afterwards; the report is a markdown and a table
  artifact (`test-suite-report`, `test-suite-matrix`) and JSON and HTML files in `output_dir`.
- **Freezes:** nothing. The application's own collections are not written.
- **Undo:** nothing to undo; delete the report files if they are not wanted.
""",
    "analyze-codebase": """\
Inventories an application's source for direct provider-SDK calls and plans its move to the unified API.

- **Does:** parses TypeScript, JavaScript and Python under `path`, lists every call by service (database, auth,
  storage, realtime, functions), flags the risky ones, and writes a markdown artifact and a JSON file (`output`).
- **Freezes:** nothing. It only reads the source tree; no provider is contacted.
- **Undo:** nothing to undo; delete the JSON file if it is not wanted.
""",
}

DESCRIPTIONS: dict[str, str] = {name: unwrap(text) for name, text in _WRAPPED.items()}
