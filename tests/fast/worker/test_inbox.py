"""The worker's inbox (server/inbox.py) in-process, on a real socket pair: which frames a free
thread takes, alone or as a group, and when the others wait. Threads are real; every wait is
bounded, so a scheduling bug fails a test instead of hanging it."""

import socket
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as Pending
from dataclasses import dataclass

import pytest

from server.shared.protocol import Op, pack
from server.worker.inbox import LARGE, STALLED_AFTER_SECONDS, FrameReader, Inbox


@dataclass(frozen=True)
class Grouping:
    max_batch_size: int = 32
    max_delay_ms: float = 0.0
    concurrency: int = 1


@pytest.fixture
def pair():
    front, worker = socket.socketpair()
    yield front, worker
    front.close()
    worker.close()


def send(sock, *frames):
    """Frames in one write, as the front's writes can arrive."""
    sock.sendall(b"".join(part for header, body in frames for part in pack(header, body)))


def invoke(request_id: int, key: str = "batched", body: bytes = b"x"):
    return {"op": Op.INVOKE, "id": request_id, "key": key, "headers": {}}, body


def inbox_for(sock, **groupings) -> Inbox:
    return Inbox(FrameReader(sock), lambda key: groupings.get(key))


def ids(work) -> list[int]:
    return [header["id"] for header, _ in work.frames]


def taking(inbox: Inbox) -> Future:
    """``inbox.take()`` on a thread of its own, as a worker thread calls it."""
    future: Future = Future()
    threading.Thread(target=lambda: future.set_result(inbox.take()), daemon=True).start()
    return future


def take_within(inbox: Inbox, seconds: float = 5.0):
    return taking(inbox).result(seconds)


def test_every_frame_of_one_write_comes_out_of_one_read_whole(pair):
    front, worker = pair
    big = bytes(range(256)) * (LARGE // 256 + 7)
    writer = threading.Thread(target=send, args=(front, invoke(1, body=b"a"), invoke(2, body=b""), invoke(3, body=big)))
    writer.start()  # more than the socket buffers: written while read
    reader = FrameReader(worker)
    frames = []
    while len(frames) < 3:
        frames += reader.read(5.0)
    writer.join(5.0)
    assert [(header["id"], body) for header, body in frames] == [(1, b"a"), (2, b""), (3, big)]
    assert reader.read(0.05) == []  # nothing more arrived: an empty list, not a close
    front.close()
    assert reader.read(5.0) is None


def test_invokes_waiting_behind_a_running_group_are_taken_together(pair):
    front, worker = pair
    inbox = inbox_for(worker, batched=Grouping())
    send(front, invoke(1))
    first = take_within(inbox)
    assert ids(first) == [1]
    send(front, invoke(2), invoke(3), invoke(4, key="other"), invoke(5))
    other = take_within(inbox)  # the batched model's one group runs: the other model's frame may start
    assert ids(other) == [4]
    waiting = taking(inbox)
    with pytest.raises(Pending):
        waiting.result(0.3)  # the model's next group may not start while its first runs
    inbox.done(first)  # and then, as every worker thread does, its thread takes again
    assert ids(take_within(inbox)) == [2, 3, 5]
    with pytest.raises(Pending):
        waiting.result(0.1)  # the reader blocks until frames come: it does not poll for the end of a group
    send(front, invoke(6, key="other"))
    assert ids(waiting.result(5.0)) == [6]


def test_a_group_holds_at_most_max_batch_size_requests(pair):
    front, worker = pair
    inbox = inbox_for(worker, batched=Grouping(max_batch_size=2, concurrency=3))
    send(front, *(invoke(i) for i in range(1, 6)))
    assert [ids(take_within(inbox)) for _ in range(3)] == [[1, 2], [3, 4], [5]]


def test_other_operations_start_at_once_and_a_second_invoke_once_the_first_stalls(pair):
    front, worker = pair
    inbox = inbox_for(worker)  # no grouping: every model's invokes run one by one
    send(front, invoke(1, key="plain"), invoke(2, key="plain"), ({"op": Op.PING, "id": 3}, b""))
    started = time.monotonic()
    assert ids(take_within(inbox)) == [1]
    assert ids(take_within(inbox)) == [3]  # a ping does not wait for invokes
    assert ids(take_within(inbox)) == [2]  # none done: the second runs beside the first once it stalls
    assert time.monotonic() - started >= STALLED_AFTER_SECONDS


def test_what_arrives_while_an_invoke_runs_is_read_once_it_stalls(pair):
    """The thread of a running invoke reads again only when done: if it is slow, another takes
    over the reading, so a ping sent meanwhile is answered without waiting for the invoke."""
    front, worker = pair
    inbox = inbox_for(worker)
    send(front, invoke(1, key="slow"))
    running = take_within(inbox)  # never done in this test
    assert ids(running) == [1]
    later = taking(inbox)
    time.sleep(0.05)
    send(front, ({"op": Op.PING, "id": 2}, b""))
    assert ids(later.result(2.0)) == [2]


def test_a_group_waits_max_delay_for_company_and_no_longer(pair):
    front, worker = pair
    inbox = inbox_for(worker, batched=Grouping(max_delay_ms=300))
    send(front, invoke(1))
    threading.Timer(0.1, send, (front, invoke(2))).start()
    started = time.monotonic()
    work = take_within(inbox)
    assert ids(work) == [1, 2]
    assert 0.25 <= time.monotonic() - started < 2.0


def test_shutdown_or_a_closed_socket_stops_every_thread(pair):
    front, worker = pair
    inbox = inbox_for(worker)
    waiting = [threading.Thread(target=inbox.take, daemon=True) for _ in range(3)]
    for thread in waiting:
        thread.start()
    send(front, ({"op": Op.SHUTDOWN, "id": -1}, b""))
    for thread in waiting:
        thread.join(5.0)
    assert not any(thread.is_alive() for thread in waiting)
    assert inbox.take() is None


def test_a_quick_request_is_read_while_a_neighbours_slow_call_runs_beside_the_main_threads_wait(pair):
    """As in the worker: its main thread blocks in ``wait_closed`` beside the serving threads. The
    thread that reads a slow invoke runs it and asks one other thread to watch; a quick request
    sent meanwhile must be read and answered when that invoke stalls, not when it ends, however
    the waiting threads happen to be queued on the inbox's lock."""
    front, worker = pair
    inbox = inbox_for(worker)
    answered: dict[int, float] = {}

    def serve() -> None:  # Worker.serve's take_turns, with "slow" taking 2 s and the rest nothing
        while (work := inbox.take()) is not None:
            for header, _ in work.frames:
                if header["key"] == "slow":
                    time.sleep(2.0)
                answered[header["id"]] = time.monotonic()
            inbox.done(work)

    closing = threading.Thread(target=inbox.wait_closed, daemon=True)
    closing.start()  # the main thread waits first, as it can after the serving threads' first turns
    time.sleep(0.05)
    for _ in range(3):
        threading.Thread(target=serve, daemon=True).start()
    time.sleep(0.1)
    send(front, invoke(1, key="slow"))
    time.sleep(0.1)
    sent = time.monotonic()
    send(front, invoke(2, key="quick"))
    deadline = sent + 3.0
    while 2 not in answered and time.monotonic() < deadline:
        time.sleep(0.01)
    assert 2 in answered and answered[2] - sent < 0.5, "the quick request waited for the slow one"
    send(front, ({"op": Op.SHUTDOWN, "id": -1}, b""))
    closing.join(5.0)
    assert not closing.is_alive()
