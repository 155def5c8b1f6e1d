"""The worker's replies (server/worker.py) in-process, on a real socket pair: whatever goes
wrong while a reply is made or written, the front gets an answer for every frame it sent."""



from server.shared import running
from server.shared.protocol import Op
from server.worker.main import Worker


def test_a_reply_that_cannot_be_written_goes_as_a_500_and_its_neighbours_as_they_are(pair):
    front, worker = pair
    worker.send_all([
        ({"id": 1, "status": 200, "headers": {"x-b": b"bytes"}}, b"[1]"),  # bytes are no JSON
        ({"id": 2, "status": 200}, "text, not bytes"),  # type: ignore[list-item]
        ({"id": 3, "status": 200}, b"[2]"),
    ])
    replies = front.read(timeout=5)
    assert [header["id"] for header, _ in replies] == [1, 2, 3]
    assert [header["status"] for header, _ in replies] == [500, 500, 200]
    assert "could not be written" in replies[0][0]["error"] and "the body is str" in replies[1][0]["error"]
    assert replies[2][1] == b"[2]"


class Undescribable(Exception):
    def __str__(self):
        raise RuntimeError("no str")

    @property
    def message(self):
        raise RuntimeError("no message")


def test_a_failure_that_cannot_be_described_still_becomes_a_reply():
    reply = Worker.failure({"id": 7, "op": Op.INVOKE, "key": "m"}, Undescribable())
    assert reply["id"] == 7 and reply["status"] == 500 and "Undescribable" in reply["error"]


def test_work_that_fails_past_every_handler_is_answered_500(pair):
    front, worker = pair
    worker.answer_failed([({"id": 4, "op": Op.INVOKE, "key": "m"}, b""), ({"id": 5, "op": Op.INVOKE, "key": "m"}, b"")])
    replies = front.read(timeout=5)
    assert [(header["id"], header["status"]) for header, _ in replies] == [(4, 500), (5, 500)]


def test_the_front_reads_what_the_worker_threads_run_in_the_shared_table():
    front, fd = running.create(2)
    table = running.RunningTable(fd, 2)
    table.mark(0, 11)
    load = table.claim(12)
    assert running.running_ids(front) == {11, 12}
    table.clear(0)
    table.release(load)
    assert running.running_ids(front) == set()
    rows = [table.claim(n) for n in range(1, running.LOAD_ROWS + 2)]
    assert rows[-1] is None and len(running.running_ids(front)) == running.LOAD_ROWS  # full: unrecorded
