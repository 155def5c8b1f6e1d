"""server.connections.CorkedTransport: a response's writes within one turn of the loop leave
as one, in order, and nothing held is lost to a close or write_eof."""

import asyncio

from server.connections import CorkedTransport


class Recorder:
    """A transport that records what reaches it."""

    def __init__(self):
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def write_eof(self) -> None:
        self.calls.append(("eof", b""))

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str):
        return ("127.0.0.1", 1) if name == "peername" else None


async def turn() -> None:
    await asyncio.sleep(0)


def test_writes_of_one_turn_leave_as_one_and_in_order():
    async def scenario():
        inner = Recorder()
        corked = CorkedTransport(inner, asyncio.get_running_loop())
        corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
        corked.write(b"body")
        assert inner.calls == []  # held until the turn ends
        await turn()
        corked.write(b"next")
        await turn()
        assert inner.calls == [("write", b"HTTP/1.1 200 OK\r\n\r\nbody"), ("write", b"next")]
        assert corked.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the transport's

    asyncio.run(scenario())


def test_close_and_write_eof_send_what_is_held_first():
    async def scenario():
        inner = Recorder()
        corked = CorkedTransport(inner, asyncio.get_running_loop())
        corked.write(b"a")
        corked.write_eof()
        corked.write(b"late")
        corked.close()
        await turn()  # the flush scheduled by the late write finds the transport closed
        assert inner.calls == [("write", b"a"), ("eof", b""), ("write", b"late"), ("close", b"")]

    asyncio.run(scenario())


def test_large_writes_are_not_copied_together():
    async def scenario():
        inner = Recorder()
        corked = CorkedTransport(inner, asyncio.get_running_loop())
        big = b"x" * (CorkedTransport.JOIN_LIMIT + 1)
        corked.write(b"head")
        corked.write(big)
        await turn()
        assert inner.calls == [("write", b"head"), ("write", big)]

    asyncio.run(scenario())
