"""Parsers and state normalisation, on outputs recorded from the real dev cluster.

tests/data/README.md says how most files were recorded. Recorded for these tests as well:
- sbatch_parsable_cluster.txt: `sbatch --parsable -M devcluster --hold --wrap true` (stdout)
- sbatch_invalid_partition_stderr.txt: `sbatch --parsable --partition=nosuch --wrap true`
  (stderr; stdout was empty, exit status 1)
- squeue_with_header.txt: `squeue --states=all -u root -o '%i|%A|%T|%r|%N' | head -4`
- squeue_named.txt: `squeue --noheader --states=all -o '%i|%A|%T|%r|%N|%P|%M|%j'` for three
  jobs: `-J "train model" --wrap "sleep 40"`, `-J sweep -p batch --hold --array=0-4`, and
  `-J "pipe|line" -a 0-1 --wrap "sleep 40"` (a name with the separator in it)
- squeue_comments.txt: `squeue --noheader --states=all -u root -o '%F|%k'` (lines of jobs
  19336-19340; 19339 is a held 3-task array submitted with
  `#SBATCH --comment=slurm_magics:20261121-1-ab.0`, then scancelled)
- sacct_with_steps.txt: `sacct -n -P --format=JobID,State,ExitCode,NodeList,Elapsed
  -j 119,122,128` (no -X: step lines too)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slurm_magics.core.outcomes import failure_without_result
from slurm_magics.core.parsing import (
    AccountingRow,
    QueueRow,
    expand_task_ids,
    jobs_with_comment,
    parse_cluster_config,
    parse_job_id,
    parse_sacct,
    parse_sbatch_parsable,
    parse_squeue,
)
from slurm_magics.core.sbatch import submission_comment
from slurm_magics.core.states import (
    JobState,
    node_accepts_jobs,
    normalise_state,
    signal_of,
    state_from_stderr,
)

DATA = Path(__file__).parents[1] / "data"


def recorded(name: str) -> str:
    return (DATA / name).read_text()


# -- job ids and task ranges ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "ids"),
    [
        ("4", (4,)),
        ("[1,3,5-7]", (1, 3, 5, 6, 7)),
        ("[0-10:2]", (0, 2, 4, 6, 8, 10)),
        ("[5-9%4]", (5, 6, 7, 8, 9)),
        ("[1-3,7,10-14:2%2]", (1, 2, 3, 7, 10, 12, 14)),
        ("[0-0]", (0,)),
    ],
)
def test_expand_task_ids(expression: str, ids: tuple[int, ...]) -> None:
    assert expand_task_ids(expression) == ids


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("123", ("123", None)),
        (" 123\n", ("123", None)),
        ("123_4", ("123", (4,))),
        ("123_[5-99%4]", ("123", tuple(range(5, 100)))),
        ("123_[1,3,5-7]", ("123", (1, 3, 5, 6, 7))),
        ("123_[0-10:2]", ("123", (0, 2, 4, 6, 8, 10))),
    ],
)
def test_parse_job_id(text: str, parsed: tuple[str, tuple[int, ...] | None]) -> None:
    assert parse_job_id(text) == parsed


@pytest.mark.parametrize(
    "text", ["JOBID", "123.batch", "128_0.batch", "123+0", "", "abc_1", "123_", "123_x"]
)
def test_parse_job_id_refuses_foreign_ids(text: str) -> None:
    assert parse_job_id(text) is None


# -- squeue ---------------------------------------------------------------------------------


def test_parse_squeue_recorded_states_all() -> None:
    text = recorded("squeue_states_all.txt")
    rows = parse_squeue(text)
    assert len(rows) == len(text.splitlines())
    by_id = {(r.array_job_id, r.task_ids): r for r in rows}
    assert by_id[("124", None)] == QueueRow("124", None, "RUNNING", "None", "vm")
    assert by_id[("125", None)] == QueueRow("125", None, "PENDING", "DependencyNeverSatisfied", "")
    assert by_id[("121", None)].state == "TIMEOUT"
    assert by_id[("121", None)].reason == "TimeLimit"
    assert by_id[("122", None)].reason == "JobLaunchFailure"
    # Array tasks belong to their array, whatever squeue's %A says ("129_1|138").
    assert by_id[("129", (1,))] == QueueRow("129", (1,), "RUNNING", "None", "vm")
    assert by_id[("128", (1,))].state == "FAILED"
    pending = by_id[("129", tuple(range(4, 100)))]
    assert (pending.state, pending.reason, pending.nodes) == ("PENDING", "JobArrayTaskLimit", "")
    held = by_id[("143", tuple(range(10000)))]
    assert held.state == "CANCELLED"


def test_parse_squeue_gathers_all_tasks_of_an_array() -> None:
    rows = parse_squeue(recorded("squeue_states_all.txt"))
    tasks = sorted(t for r in rows if r.array_job_id == "5" for t in r.task_ids or ())
    assert tasks == list(range(32))
    running = sorted(
        t
        for r in rows
        if r.array_job_id == "129" and r.state == "RUNNING"
        for t in r.task_ids or ()
    )
    assert running == [0, 1, 2, 3]
    states = {r.state for r in rows}
    assert states <= {"PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}
    for row in rows:
        normalise_state(row.state)  # every recorded state is known


def test_parse_squeue_recorded_names_partitions_and_times() -> None:
    rows = parse_squeue(recorded("squeue_named.txt"))
    assert rows == [
        QueueRow("19456", (0, 1, 2, 3, 4), "PENDING", "JobHeldUser", "", "batch", "0:00", "sweep"),
        QueueRow("19455", None, "RUNNING", "None", "vm", "debug", "0:03", "train model"),
        QueueRow("19457", (0,), "RUNNING", "None", "vm", "debug", "0:03", "pipe|line"),
        QueueRow("19457", (1,), "RUNNING", "None", "vm", "debug", "0:03", "pipe|line"),
    ]


def test_parse_squeue_ignores_foreign_lines() -> None:
    text = recorded("squeue_with_header.txt")
    assert text.startswith("JOBID|JOBID|STATE|REASON|NODELIST\n")
    rows = parse_squeue(text + "\nslurm_load_jobs error: Unable to contact slurm controller\n")
    assert [r.array_job_id for r in rows] == ["123", "124", "125"]
    assert parse_squeue("") == []
    assert parse_squeue("1|1|RUNNING|None\n1|1|RUNNING|None|vm|extra\n") == []
    assert parse_squeue("1|1|RUNNING|None|vm|debug|0:01\n") == []


# -- sacct ----------------------------------------------------------------------------------


def test_parse_sacct_recorded() -> None:
    rows = parse_sacct(recorded("sacct.txt"))
    assert len(rows) == 23
    by_id = {(r.array_job_id, r.task_ids): r for r in rows}
    assert by_id[("120", None)] == AccountingRow("120", None, "FAILED", "3:0", "vm", "00:00:01")
    assert by_id[("123", None)].state == "CANCELLED by 0"
    assert by_id[("125", None)].nodes == "None assigned"
    assert by_id[("128", (3,))].exit_code == "1:0"
    assert by_id[("129", tuple(range(4, 100)))].state == "PENDING"
    assert by_id[("121", None)].elapsed == "00:01:05"


def test_parse_sacct_ignores_step_lines() -> None:
    rows = parse_sacct(recorded("sacct_with_steps.txt"))
    assert [(r.array_job_id, r.task_ids) for r in rows] == [
        ("119", None),
        ("122", None),
        ("128", (0,)),
        ("128", (1,)),
        ("128", (2,)),
        ("128", (3,)),
    ]
    assert parse_sacct("Slurm accounting storage is disabled\n") == []


@pytest.mark.parametrize(
    ("job", "state"),
    [
        ("119", JobState.COMPLETED),
        ("120", JobState.FAILED),
        ("121", JobState.TIMEOUT),
        ("122", JobState.FAILED),  # OverMemoryKill's 0:9: OUT_OF_MEMORY only with its stderr
        ("123", JobState.CANCELLED),  # "CANCELLED by 0"
        ("124", JobState.RUNNING),
        ("125", JobState.PENDING),
        ("127_4", JobState.COMPLETED),
        ("128_1", JobState.FAILED),
    ],
)
def test_recorded_sacct_states_normalise(job: str, state: JobState) -> None:
    rows = {
        f"{r.array_job_id}_{r.task_ids[0]}" if r.task_ids else r.array_job_id: r
        for r in parse_sacct(recorded("sacct.txt"))
    }
    assert normalise_state(rows[job].state) is state


# -- states ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slurm_state", "stderr", "state"),
    [
        ("CANCELLED by 0", None, JobState.CANCELLED),
        ("FAILED", None, JobState.FAILED),  # even with exit code 0:9 (a plain kill -9)
        ("FAILED", "slurmstepd-vm: error: Exceeded job memory limit", JobState.OUT_OF_MEMORY),
        ("FAILED", "Killed\n", JobState.FAILED),
        ("OUT_OF_MEMORY", None, JobState.OUT_OF_MEMORY),
        ("COMPLETED", None, JobState.COMPLETED),
        ("TIMEOUT", None, JobState.TIMEOUT),
        ("DEADLINE", None, JobState.TIMEOUT),
        ("NODE_FAIL", None, JobState.NODE_FAIL),
        ("BOOT_FAIL", None, JobState.NODE_FAIL),
        ("PREEMPTED", None, JobState.CANCELLED),
        ("REQUEUED", None, JobState.PENDING),
        ("COMPLETING", None, JobState.RUNNING),
        ("SUSPENDED", None, JobState.RUNNING),
        ("RUNNING+", None, JobState.RUNNING),
        (" running ", None, JobState.RUNNING),
    ],
)
def test_normalise_state(slurm_state: str, stderr: str | None, state: JobState) -> None:
    assert normalise_state(slurm_state, stderr=stderr) is state


@pytest.mark.parametrize(
    ("exit_code", "signal"),
    [("0:9", 9), ("0:15", 15), ("9:0", None), ("1:0", None), ("", None), (None, None), ("x", None)],
)
def test_signal_of(exit_code: str | None, signal: int | None) -> None:
    assert signal_of(exit_code) == signal


def test_a_sigkill_with_no_memory_line_is_failed_naming_the_signal() -> None:
    # sacct of a task that killed itself (os.kill(os.getpid(), SIGKILL)) with 2G asked and
    # 14 MB used: "FAILED|0:9", batch step "CANCELLED|0:9|...|14228K"; its stderr is empty.
    assert normalise_state("FAILED", stderr="") is JobState.FAILED
    error = failure_without_result(
        JobState.FAILED, job_id="375", exit_code="0:9", stderr_tail="", log_paths=("a", "b")
    )
    assert "killed by signal 9 (SIGKILL)" in str(error) and "memory" not in str(error)
    oom = failure_without_result(
        normalise_state("FAILED", stderr=recorded("slurm_stderr_oom.txt")),
        job_id="122",
        exit_code="0:9",
        stderr_tail="",
        log_paths=("a", "b"),
    )
    assert oom.state is JobState.OUT_OF_MEMORY and "ask for more (memory=...)" in str(oom)


@pytest.mark.parametrize("text", ["WEIRD", "", "CANCELLEDX", "by 0"])
def test_unknown_state_raises(text: str) -> None:
    with pytest.raises(ValueError, match="unknown SLURM job state") as raised:
        normalise_state(text)
    assert repr(text) in str(raised.value)


def test_finished_states() -> None:
    assert not JobState.PENDING.finished
    assert not JobState.RUNNING.finished
    assert all(s.finished for s in JobState if s not in (JobState.PENDING, JobState.RUNNING))
    assert str(JobState.OUT_OF_MEMORY) == "OUT_OF_MEMORY"


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("slurm_stderr_oom.txt", JobState.OUT_OF_MEMORY),  # also says "CANCELLED AT"
        ("slurm_stderr_timeout.txt", JobState.TIMEOUT),  # also says "CANCELLED AT"
        ("slurm_stderr_cancelled.txt", JobState.CANCELLED),
    ],
)
def test_state_from_recorded_stderr(name: str, state: JobState) -> None:
    stderr = recorded(name)
    assert state_from_stderr(stderr) is state
    # What the stderr says wins over sacct's plain FAILED only for memory kills.
    expected = state if state is JobState.OUT_OF_MEMORY else JobState.FAILED
    assert normalise_state("FAILED", stderr=stderr) is expected


@pytest.mark.parametrize(
    "stderr", ["", "Traceback (most recent call last):\nValueError: bad\n", "cancelled at noon"]
)
def test_state_from_ordinary_stderr_is_unknown(stderr: str) -> None:
    assert state_from_stderr(stderr) is None


# -- sbatch and scontrol --------------------------------------------------------------------


def test_jobs_with_comment_recorded() -> None:
    output = recorded("squeue_comments.txt")
    assert jobs_with_comment(output, "slurm_magics:20261121-1-ab.0") == ["19339"]
    assert jobs_with_comment(output, "slurm_magics:20261121-1-ab.1") == []
    # "(null)" is literally what squeue prints for no comment; ids come oldest first
    assert jobs_with_comment(output, "(null)") == ["19336", "19337", "19338", "19340"]
    assert jobs_with_comment("12|c\n9|c\n12|c\n", "c") == ["9", "12"]


def test_submission_comment_refuses_odd_tags() -> None:
    assert submission_comment("20261121-1-ab.0") == "slurm_magics:20261121-1-ab.0"
    with pytest.raises(ValueError, match="'a b'"):
        submission_comment("a b")


def test_parse_sbatch_parsable_recorded() -> None:
    assert parse_sbatch_parsable(recorded("sbatch_parsable.txt")) == "119"
    assert parse_sbatch_parsable(recorded("sbatch_parsable_cluster.txt")) == "455"
    assert parse_sbatch_parsable("sbatch: warning: something\n456\n") == "456"


@pytest.mark.parametrize("stdout", ["", "\n", recorded("sbatch_invalid_partition_stderr.txt")])
def test_parse_sbatch_parsable_without_id(stdout: str) -> None:
    with pytest.raises(ValueError, match="sbatch printed no job id") as raised:
        parse_sbatch_parsable(stdout)
    assert repr(stdout.strip()) in str(raised.value)


def test_parse_cluster_config_recorded() -> None:
    config = parse_cluster_config(recorded("scontrol_show_config.txt"))
    assert config.max_array_size == 100001
    assert config.max_job_count == 200000
    assert config.min_job_age == 300
    assert config.accounting is True
    assert config.version == "22.05.8"
    assert config.cluster_name == "devcluster"


def test_parse_cluster_config_defaults_and_no_accounting() -> None:
    config = parse_cluster_config("AccountingStorageType   = accounting_storage/none\n")
    assert config.accounting is False
    assert (config.max_array_size, config.max_job_count, config.min_job_age) == (1001, 10000, 300)
    assert parse_cluster_config("").accounting is False


# sinfo's %t as SLURM prints it; "plnd" is the state a CI run met between two tests (idle,
# planned by the backfill scheduler for a pending job) and took for an unusable node.
@pytest.mark.parametrize(
    ("state", "accepts"),
    [
        ("idle", True),
        ("mix", True),
        ("alloc", True),
        ("comp", True),
        ("plnd", True),
        ("mix-", True),
        ("idle@", True),
        ("idle!", True),
        ("idle*", False),
        ("idle~", False),
        ("idle#", False),
        ("idle%", False),
        ("alloc$", False),
        ("idle^", False),
        ("down*", False),
        ("down", False),
        ("drain", False),
        ("drng", False),
        ("fail", False),
        ("futr", False),
        ("maint", False),
        ("resv", False),
        ("inval", False),
        ("unk*", False),
        ("", False),
    ],
)
def test_node_accepts_jobs_reads_sinfo_states_and_flags(state: str, accepts: bool) -> None:
    assert node_accepts_jobs(state) is accepts
