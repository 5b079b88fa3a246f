"""The fact protocol: the script is valid sh, and the parser is pure and robust."""

from __future__ import annotations

import subprocess
from pathlib import Path

from backends.vm.facts import (
    CHUNK,
    CHUNK_BYTES,
    FactRequest,
    GuardQuery,
    PathFact,
    ServiceQuery,
    chunks,
    fact_script,
    live_path_form,
    parse_facts,
)

SHA_A = "a" * 64
SHA_B = "b" * 64


def test_parser_reads_every_record_kind_including_names_with_spaces() -> None:
    request = FactRequest(
        paths=("/r/my file.conf", "/r/dir", "/r/link to it", "/r/missing"),
        services=(ServiceQuery(status="true"), ServiceQuery(unit="web.service")),
        guards=(GuardQuery(unless="true"),),
    )
    output = "\n".join([
        "#stat",
        "81a4 12 root root /r/my file.conf",
        "41ed 4096 app app /r/dir",
        "a1ff 26 root root /r/link to it",
        "#sha",
        f"{SHA_A}  /r/my file.conf",
        "#rec",
        "L 2 ../target with  two spaces",
        "S 0 0",
        "S 1 none",
        "G 0 1",
        "#end",
        "",
    ])
    facts = parse_facts(output, request)
    assert facts.complete
    assert facts.paths["/r/my file.conf"] == PathFact(
        type="file", mode="0644", owner="root", group="root", size=12, sha256=SHA_A)
    assert facts.paths["/r/dir"].type == "directory"
    assert facts.paths["/r/dir"].mode == "0755"
    assert facts.paths["/r/link to it"].target == "../target with  two spaces"
    assert "/r/missing" not in facts.paths
    assert facts.services == {0: 0, 1: None}
    assert facts.guards == {0: False}


def test_parser_unescapes_names_that_sha256sum_escaped() -> None:
    request = FactRequest(paths=("/r/back\\slash",))
    output = f"#stat\n81a4 1 u g /r/back\\slash\n#sha\n\\{SHA_B}  /r/back\\\\slash\n#rec\n#end\n"
    facts = parse_facts(output, request)
    assert facts.paths["/r/back\\slash"].sha256 == SHA_B


def test_truncated_or_noisy_output_is_flagged_not_misread() -> None:
    request = FactRequest(paths=("/r/a",), services=(ServiceQuery(status="x"),))
    cut = parse_facts("#stat\n81a4 1 u g /r/a\n#sha\n", request)
    assert not cut.complete
    noisy = parse_facts(
        "motd banner\n#stat\ngarbage line\n81a4 1 u g /r/a\n#sha\nzz  /r/a\n#rec\n"
        "S x 1\nL 9 /nowhere\n#end\n", request)
    assert noisy.complete
    assert noisy.paths["/r/a"].sha256 is None  # the bad hash line was ignored
    assert noisy.services == {}


def test_live_form_only_carries_the_metadata_the_desired_form_manages() -> None:
    fact = PathFact(type="file", mode="0600", owner="app", group="app", sha256=SHA_A)
    assert live_path_form(fact, {"type": "file", "sha256": SHA_A}) == {
        "type": "file", "sha256": SHA_A}
    assert live_path_form(fact, {"type": "file", "mode": "0644", "owner": "root"}) == {
        "type": "file", "sha256": SHA_A, "mode": "0600", "owner": "app"}
    assert live_path_form(None, {"type": "file"}) is None


def test_script_runs_under_sh_and_its_output_parses(tmp_path: Path) -> None:
    odd = tmp_path / "name with spaces & 'quotes'"
    odd.write_text("x")
    odd.chmod(0o640)
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to("name with spaces & 'quotes'")
    request = FactRequest(
        paths=(str(odd), str(tmp_path / "d"), str(tmp_path / "l"), str(tmp_path / "nope")),
        services=(ServiceQuery(status="exit 3"), ServiceQuery(status='[ "$X" = 1 ]')),
        guards=(GuardQuery(creates=str(tmp_path / "d")), GuardQuery(unless="false")),
        env={"X": "1"},
    )
    out = subprocess.run(["sh", "-c", fact_script(request)], capture_output=True,
                         text=True, check=True).stdout
    facts = parse_facts(out, request)
    assert facts.complete
    assert facts.paths[str(odd)].mode == "0640"
    assert facts.paths[str(odd)].sha256 == (
        "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881")
    assert facts.paths[str(tmp_path / "l")].target == "name with spaces & 'quotes'"
    assert str(tmp_path / "nope") not in facts.paths
    assert facts.services == {0: 3, 1: 0}
    assert facts.guards == {0: True, 1: False}


def test_paths_go_in_chunks_so_no_command_line_nears_the_kernel_limit() -> None:
    paths = tuple(f"/r/srv/{'x' * 200}/file-{i}" for i in range(3_000))
    request = FactRequest(paths=paths, root="/r", contained=paths)
    script = fact_script(request)
    assert len(script) > 2 * 1024 * 1024  # larger than ARG_MAX as a whole
    assert max(len(line) for line in script.split("\n")) < 2 * CHUNK_BYTES + 200
    assert all(count <= CHUNK for _, count in chunks(paths))
    assert [first for first, _ in chunks(["a"] * 600)] == [0, CHUNK, 2 * CHUNK]


def test_realpath_output_is_matched_chunk_by_chunk() -> None:
    contained = tuple(f"/r/d{i}" for i in range(CHUNK + 10))
    request = FactRequest(root="/r", contained=contained)
    # The first chunk (the root and CHUNK - 1 paths) answered in one call; the
    # second failed and answered path by path, one of them unknown.
    first = ["/r", *(f"/real/d{i}" for i in range(CHUNK - 1))]
    each = [f"R {CHUNK + i} /real/d{CHUNK - 1 + i}" for i in range(11)]
    each[3] = f"R {CHUNK + 3} ?"
    output = "\n".join(["#stat", "#sha", "#real", "#part 0", *first,
                        f"#part {CHUNK}", "/real/half-printed", "#each", *each,
                        "#rec", "#end"])
    resolved = parse_facts(output, request).resolved
    assert resolved["/r"] == "/r"
    assert resolved["/r/d0"] == "/real/d0"
    assert resolved[f"/r/d{CHUNK - 2}"] == f"/real/d{CHUNK - 2}"
    assert resolved[f"/r/d{CHUNK - 1}"] == f"/real/d{CHUNK - 1}"
    assert resolved[f"/r/d{CHUNK + 2}"] is None
    assert resolved[f"/r/d{CHUNK + 9}"] == f"/real/d{CHUNK + 9}"
    # A chunk whose output does not line up with what was asked is unknown.
    short = output.replace(f"/real/d{CHUNK - 2}\n", "")
    assert parse_facts(short, request).resolved["/r/d0"] is None
