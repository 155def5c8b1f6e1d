"""The memory budget in-process: the limit read from this process's own cgroup (texts fed in as
/proc and /sys would give them), and reservations that make loads started at once count as many."""

import asyncio
import os

import pytest

from handlers.errors import InsufficientMemory
from server.front import budget
from server.front.budget import MemoryBudget, Mount

MB = 2**20

# A hybrid host as a container without a cgroup namespace sees it: v1 controllers with the
# container's path, a unified hierarchy without the memory controller.
V1_CGROUP = """\
12:pids:/docker/abc
4:memory:/docker/abc/inner
3:cpu,cpuacct:/docker/abc
0::/docker/abc
"""
V1_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V1_UNLIMITED = "9223372036854771712\n"

V2_CGROUP = "0::/system.slice/app.service/worker\n"
V2_MOUNTINFO = "25 20 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"


def reader(files: dict[str, str]):
    """A stand-in for reading a file: ``files``' text, None (unreadable) for any other path."""
    return files.get


def test_own_cgroups_reads_v1_memory_and_the_v2_line():
    assert budget.own_cgroups(V1_CGROUP) == ("/docker/abc/inner", "/docker/abc")
    assert budget.own_cgroups(V2_CGROUP) == (None, "/system.slice/app.service/worker")
    assert budget.own_cgroups("5:cpu,memory,blkio:/a/b\n") == ("/a/b", None)  # co-mounted controllers
    assert budget.own_cgroups("1:name=systemd:/x\n2:memoryless:/y\njunk\n") == (None, None)
    assert budget.own_cgroups("") == (None, None)


def test_cgroup_mounts_finds_the_memory_controller_and_the_unified_hierarchy():
    v1, v2 = budget.cgroup_mounts(V1_MOUNTINFO)
    assert v1 == Mount("/", "/sys/fs/cgroup/memory") and v2 == Mount("/", "/sys/fs/cgroup/unified")
    assert budget.cgroup_mounts(V2_MOUNTINFO) == (None, Mount("/", "/sys/fs/cgroup"))
    # A container's view of its own cgroup bind-mounted, with an escaped space in the path.
    line = r"40 31 0:32 /docker/my\040box /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory" + "\n"
    assert budget.cgroup_mounts(line)[0] == Mount("/docker/my box", "/sys/fs/cgroup/memory")


def test_cgroup_directories_walk_up_to_the_mount_point():
    mount = Mount("/", "/sys/fs/cgroup/memory")
    assert budget.cgroup_directories("/a/b", mount) == [
        "/sys/fs/cgroup/memory/a/b", "/sys/fs/cgroup/memory/a", "/sys/fs/cgroup/memory"]
    assert budget.cgroup_directories("/", mount) == ["/sys/fs/cgroup/memory"]
    # The container's own cgroup mounted as the mount's root: its path maps onto the mount point.
    inner = Mount("/docker/abc", "/sys/fs/cgroup/memory")
    assert budget.cgroup_directories("/docker/abc", inner) == ["/sys/fs/cgroup/memory"]
    assert budget.cgroup_directories("/docker/abc/job", inner) == ["/sys/fs/cgroup/memory/job", "/sys/fs/cgroup/memory"]
    assert budget.cgroup_directories("/docker/abcdef", inner) == ["/sys/fs/cgroup/memory"]  # not under its root
    assert budget.cgroup_directories("/elsewhere", inner) == ["/sys/fs/cgroup/memory"]  # a namespace's view


@pytest.mark.parametrize("text, limit", [
    ("1610612736\n", 1610612736), ("max\n", None), (V1_UNLIMITED, None), ("9223372036854775807", None),
    ("", None), ("-1", None), ("0", None), (None, None), ("12k", None),
])
def test_parse_limit(text, limit):
    assert budget.parse_limit(text) == limit


def test_a_v1_limit_is_read_from_the_process_own_cgroup_and_its_tightest_ancestor():
    root = "/sys/fs/cgroup/memory"
    files = {
        "/proc/self/cgroup": V1_CGROUP, "/proc/self/mountinfo": V1_MOUNTINFO,
        f"{root}/memory.limit_in_bytes": V1_UNLIMITED,
        f"{root}/docker/memory.limit_in_bytes": V1_UNLIMITED,
        f"{root}/docker/abc/memory.limit_in_bytes": f"{1536 * MB}\n",
        f"{root}/docker/abc/inner/memory.limit_in_bytes": V1_UNLIMITED,
    }
    assert budget.cgroup_limit(reader(files)) == (1536 * MB, f"{root}/docker/abc/memory.limit_in_bytes")
    files[f"{root}/docker/abc/inner/memory.limit_in_bytes"] = f"{512 * MB}\n"  # tighter than its parent
    assert budget.cgroup_limit(reader(files)) == (512 * MB, f"{root}/docker/abc/inner/memory.limit_in_bytes")


def test_the_root_limit_is_not_taken_for_the_process_own():
    """The bug: the root's file said unlimited (or something else) while the process's cgroup had a limit."""
    root = "/sys/fs/cgroup/memory"
    files = {
        "/proc/self/cgroup": "4:memory:/job\n0::/\n", "/proc/self/mountinfo": V1_MOUNTINFO,
        f"{root}/memory.limit_in_bytes": V1_UNLIMITED,
        f"{root}/job/memory.limit_in_bytes": f"{1536 * MB}\n",
    }
    assert budget.cgroup_limit(reader(files))[0] == 1536 * MB


def test_a_v2_limit_is_read_from_the_process_own_cgroup_and_max_means_none():
    files = {
        "/proc/self/cgroup": V2_CGROUP, "/proc/self/mountinfo": V2_MOUNTINFO,
        "/sys/fs/cgroup/system.slice/memory.max": "max\n",
        "/sys/fs/cgroup/system.slice/app.service/memory.max": f"{2048 * MB}\n",
        "/sys/fs/cgroup/system.slice/app.service/worker/memory.max": "max\n",
    }
    assert budget.cgroup_limit(reader(files)) == (2048 * MB, "/sys/fs/cgroup/system.slice/app.service/memory.max")
    files["/sys/fs/cgroup/system.slice/app.service/memory.max"] = "max\n"
    assert budget.cgroup_limit(reader(files)) is None


def test_v1_comes_first_on_a_hybrid_host_and_v2_without_memory_files_is_skipped():
    files = {"/proc/self/cgroup": V1_CGROUP, "/proc/self/mountinfo": V1_MOUNTINFO,
             "/sys/fs/cgroup/memory/docker/abc/inner/memory.limit_in_bytes": f"{700 * MB}\n"}
    assert budget.cgroup_limit(reader(files))[0] == 700 * MB
    files["/sys/fs/cgroup/memory/docker/abc/inner/memory.limit_in_bytes"] = V1_UNLIMITED
    assert budget.cgroup_limit(reader(files)) is None  # the unified mount has no memory.max here


def test_the_root_files_are_the_fallback_without_proc():
    assert budget.cgroup_limit(reader({"/sys/fs/cgroup/memory.max": f"{900 * MB}\n"})) == (900 * MB, "/sys/fs/cgroup/memory.max")
    files = {"/sys/fs/cgroup/memory/memory.limit_in_bytes": f"{800 * MB}\n"}
    assert budget.cgroup_limit(reader(files)) == (800 * MB, "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert budget.cgroup_limit(reader({})) is None


def test_the_budget_names_its_limit_source():
    assert MemoryBudget(300 * MB, 0).source == "MODEL_SERVER_MEMORY_LIMIT_MB"
    files = {"/proc/self/cgroup": "4:memory:/job\n", "/proc/self/mountinfo": V1_MOUNTINFO,
             "/sys/fs/cgroup/memory/job/memory.limit_in_bytes": f"{1536 * MB}\n"}
    found = MemoryBudget(None, 0, read=reader(files))
    assert found.limit == 1536 * MB and found.source.startswith("cgroup")
    nothing = MemoryBudget(None, 0, read=reader({}))
    assert nothing.source == "the machine's memory" and nothing.limit > 0


def test_this_process_cgroup_limit_is_read_when_there_is_one():
    """The real /proc and /sys of this machine: whatever they say, it parses (None or a positive limit)."""
    found = budget.cgroup_limit()
    assert found is None or (found[0] > 0 and os.path.basename(found[1]) in ("memory.max", "memory.limit_in_bytes"))


# ---------------------------------------------------------------------- reservations


def fresh_budget(limit_mb: int, headroom_mb: int = 0) -> MemoryBudget:
    return MemoryBudget(limit_mb * MB, headroom_mb * MB)


def test_loads_started_at_once_are_judged_as_many():
    """Six loads of 100 MB checked before any is measured: only those that fit together get in."""
    memory = fresh_budget(limit_mb=2000, headroom_mb=100)
    used = budget.tree_rss([os.getpid()])
    room = memory.limit - memory.headroom - used
    need = room // 6 + 1  # six do not fit, five do
    granted, refused = [], []
    for _ in range(6):
        try:
            granted.append(memory.reserve(need, [os.getpid()]))
        except InsufficientMemory as err:
            refused.append(err)
    assert len(granted) == 5 and len(refused) == 1
    assert "5 loads under way" in refused[0].message and refused[0].status == 507
    granted[0].release()
    granted[0].release()  # twice: harmless
    assert memory.reserved == 4 * need and memory.loads == 4
    memory.reserve(need, [os.getpid()])  # room again for one
    for reservation in granted[1:]:
        reservation.release()
    assert memory.loads == 1


def test_concurrent_tasks_reserve_atomically_with_their_check():
    """Loads as asyncio tasks that yield between check and load: the reservation is taken before
    any of them yields, so the sum granted never exceeds the room."""
    memory = fresh_budget(limit_mb=2000)
    room = memory.limit - budget.tree_rss([os.getpid()])
    need = room // 4 + 1  # three fit

    async def load() -> bool:
        await asyncio.sleep(0)  # each starts as a request would, after its own awaits
        try:
            reservation = memory.reserve(need, [os.getpid()])
        except InsufficientMemory:
            return False
        try:
            await asyncio.sleep(0.01)  # the worker loading
            return True
        finally:
            reservation.release()

    async def main() -> list[bool]:
        return await asyncio.gather(*(load() for _ in range(6)))

    results = asyncio.run(main())
    assert results.count(True) == 3 and memory.reserved == 0 and memory.loads == 0


def test_a_directory_that_took_more_than_its_files_promise_is_estimated_by_what_it_took():
    memory = fresh_budget(limit_mb=1000)
    assert memory.estimate("/models/a", 10 * MB) == 10 * MB
    memory.remember("/models/a", 400 * MB)
    assert memory.estimate("/models/a", 10 * MB) == 400 * MB
    assert memory.estimate("/models/b", 10 * MB) == 10 * MB
    memory.remember("/models/a", 50 * MB)  # the latest load took less (a neighbour had inflated the first)
    assert memory.estimate("/models/a", 10 * MB) == 50 * MB
    memory.remember("/models/a", 1 * MB)
    assert memory.estimate("/models/a", 10 * MB) == 10 * MB  # never below what its files promise


def test_a_symlinked_model_file_counts_at_its_target_size(tmp_path):
    (tmp_path / "store").mkdir()
    with open(tmp_path / "store" / "weights.bin", "wb") as file:
        file.truncate(50 * MB)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").symlink_to(tmp_path / "store" / "weights.bin")
    (tmp_path / "model" / "loop").symlink_to(tmp_path / "model" / "loop")  # unreadable: counts nothing
    assert budget.directory_bytes(tmp_path / "model") == 50 * MB


def test_near_the_limit_a_load_waits_for_those_under_way_and_is_judged_with_what_they_took():
    """Each load under way keeps a headroom of room for what it may take beyond its estimate: with
    room for the estimates of all three but not for their headrooms, the third waits for a
    release, and is then judged again (here: it fits, the others having taken what they said)."""
    memory = fresh_budget(limit_mb=2000, headroom_mb=100)
    pids = [os.getpid()]
    room = memory.limit - memory.headroom - budget.tree_rss(pids)
    need = (room - 150 * MB) // 3  # three estimates fit; two headrooms beside them do not
    events = []

    async def load(name: str, seconds: float) -> None:
        reservation = await memory.admit(need, lambda: pids)
        events.append(f"{name} admitted")
        await asyncio.sleep(seconds)
        events.append(f"{name} measured")
        reservation.release()

    async def main() -> None:
        await asyncio.gather(load("a", 0.05), load("b", 0.1), load("c", 0.01))

    asyncio.run(main())
    assert events == ["a admitted", "b admitted", "a measured", "c admitted", "c measured", "b measured"]
    assert memory.loads == 0 and memory.reserved == 0


def test_a_waiting_load_gets_507_when_what_the_others_took_leaves_no_room():
    memory = fresh_budget(limit_mb=2000, headroom_mb=100)
    pids = [os.getpid()]
    room = memory.limit - memory.headroom - budget.tree_rss(pids)
    need = (room - 150 * MB) // 3

    async def main() -> BaseException | None:
        first = await memory.admit(need, lambda: pids)
        second = await memory.admit(need, lambda: pids)  # one headroom beside the first: fits
        waiting = asyncio.ensure_future(memory.admit(need, lambda: pids))
        await asyncio.sleep(0.01)
        assert not waiting.done()  # three estimates fit, but not with two headrooms
        memory.reserved += room  # the first "took" far more than it promised, as a model_fn may
        first.release()
        try:
            await waiting
        except InsufficientMemory as err:
            return err
        finally:
            memory.reserved -= room
            second.release()
        return None

    refused = asyncio.run(main())
    assert refused is not None and refused.status == 507
