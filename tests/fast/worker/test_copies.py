"""Loads and unloads name the copy of a model they are about (server/worker/main.py), in-process on
a real socket pair: an unload queued behind others leaves alone a copy loaded since, and an
abandoned load is answered at once, its own end saying nothing."""

import threading

from server.shared.protocol import Op


def test_an_unload_of_an_earlier_copy_leaves_the_later_one(pair):
    _, worker = pair
    later = object()
    worker.models["m"], worker.copies["m"] = later, 2
    worker.unload({"id": 1, "op": Op.UNLOAD, "key": "m", "copy": 1}, b"")
    assert worker.models["m"] is later
    worker.unload({"id": 2, "op": Op.UNLOAD, "key": "m", "copy": 2}, b"")
    assert "m" not in worker.models and "m" not in worker.copies


def test_an_abandoned_load_is_answered_at_once_and_its_end_says_nothing(pair, monkeypatch, tmp_path):
    front, worker = pair
    release = threading.Event()
    loaded = object()

    def slow_load(*args, **kwargs):
        release.wait(5)
        return loaded

    monkeypatch.setattr("server.worker.main.serving.load", slow_load)
    load = threading.Thread(target=worker.run, args=(worker.load, {"id": 7, "op": Op.LOAD, "key": "m", "path": str(tmp_path),
                                                                     "copy": 3}, b""))
    load.start()
    while 7 not in worker.loading:
        threading.Event().wait(0.01)
    worker.unload({"id": 8, "op": Op.UNLOAD, "key": "m", "copy": 3, "abandon_loads": True}, b"")
    (reply, _), = front.read(timeout=5)
    assert reply["id"] == 7 and reply["status"] == 404 and "abandoned" in reply["error"]
    release.set()
    load.join(5)
    assert "m" not in worker.models  # what the load made is dropped
    assert front.read(timeout=0.2) == []  # and the load's end sends no second answer
    # A load of an abandoned copy that arrives after its abandonment is refused at once.
    worker.run(worker.load, {"id": 9, "op": Op.LOAD, "key": "m", "path": str(tmp_path), "copy": 3}, b"")
    (reply, _), = front.read(timeout=5)
    assert reply["id"] == 9 and reply["status"] == 404


def test_a_load_of_an_earlier_copy_that_ends_after_a_later_one_is_dropped(pair, monkeypatch, tmp_path):
    """The earlier copy was unloaded while it loaded, and its abandonment still waits behind other
    unloads: the later copy, loaded meanwhile, keeps the name."""
    front, worker = pair
    later = object()
    worker.models["m"], worker.copies["m"] = later, 5
    monkeypatch.setattr("server.worker.main.serving.load", lambda *args, **kwargs: object())
    worker.run(worker.load, {"id": 3, "op": Op.LOAD, "key": "m", "path": str(tmp_path), "copy": 4}, b"")
    (reply, _), = front.read(timeout=5)
    assert reply["id"] == 3 and reply["status"] == 404
    assert worker.models["m"] is later and worker.copies["m"] == 5
