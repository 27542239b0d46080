"""lanmesh.aio.Peer in running event loops."""

from __future__ import annotations

import asyncio

import pytest

import lanmesh
import lanmesh.aio


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_send_recv_and_async_for(router):
    async def main():
        async with lanmesh.aio.Peer("A", router=router.address) as a, lanmesh.aio.Peer(
            "B", router=router.address
        ) as b:
            for value in (b"bytes", "text", {"json": [1, 2]}):
                await a.send("B", value)
            assert await a.send_acked("B", 4) > 0
            got = []
            async for msg in b:
                got.append(msg.data)
                if len(got) == 4:
                    break
            assert got == [b"bytes", "text", {"json": [1, 2]}, 4]
            assert await b.recv(timeout=0.1) is None
            await a.broadcast("all")
            assert (await b.recv(timeout=5)).data == "all"
            assert b.get("all") is None
            assert a.peers() == ["A", "B"] and a.status == "connected"

    run(main())


def test_await_connects_and_close_reports(router):
    async def main():
        a = await lanmesh.aio.Peer("A", router=router.address)
        await a.send("nobody", "x")
        report = await a.close()
        assert [(u.to, u.reason) for u in report] == [("nobody", "unknown peer")]
        assert await a.wait(timeout=1)

    run(main())


def test_requests_with_an_async_responder(router):
    async def main():
        async with lanmesh.aio.Peer("A", router=router.address) as a, lanmesh.aio.Peer(
            "sensor", router=router.address
        ) as s:
            async def answer(req):
                await asyncio.sleep(0.01)  # a responder may await anything
                return {"temp": 21.5, "asked": req.data}

            s.respond(answer)
            assert await a.request("sensor", "temp?", timeout=2) == {"temp": 21.5, "asked": "temp?"}
            s.respond(lambda req: None)
            with pytest.raises(lanmesh.NoResponder):
                await a.request("sensor", "temp?", timeout=2)
            with pytest.raises(lanmesh.UnknownPeer):
                await a.send_acked("nobody", "x")

    run(main())


def test_callbacks_run_on_the_loop_in_order(router):
    async def main():
        loop = asyncio.get_running_loop()
        got = []
        on_loop = []

        async def on_message(msg):
            on_loop.append(asyncio.get_running_loop() is loop)
            got.append(msg.data)
            if msg.data % 10 == 0:
                await asyncio.sleep(0)

        joined = []
        async with lanmesh.aio.Peer(
            "B", router=router.address, on_message=on_message, on_peer_joined=joined.append
        ) as b:
            async with lanmesh.aio.Peer("A", router=router.address) as a:
                for i in range(100):
                    await a.send("B", i)
                for _ in range(500):
                    if len(got) == 100:
                        break
                    await asyncio.sleep(0.01)
            assert got == list(range(100)) and all(on_loop)
            assert joined == ["A"]

    run(main())


def test_a_cancelled_recv_loses_no_message(router):
    async def main():
        async with lanmesh.aio.Peer("A", router=router.address) as a, lanmesh.aio.Peer(
            "B", router=router.address
        ) as b:
            for round in range(20):
                waiting = asyncio.ensure_future(b.recv())
                await asyncio.sleep(0)
                await a.send("B", round)
                await asyncio.sleep(0.001 * (round % 3))
                waiting.cancel()
                try:
                    got = await waiting
                except asyncio.CancelledError:
                    got = (await b.recv(timeout=5))
                assert got is not None and got.data == round

    run(main())


def test_many_sends_complete_without_suspending(router):
    async def main():
        async with lanmesh.aio.Peer("A", router=router.address) as a, lanmesh.aio.Peer(
            "B", router=router.address
        ) as b:
            n = 20_000
            for i in range(n):
                await a.send("B", b"x" * 64)
            count = 0
            while count < n:
                msg = await b.recv(timeout=10)
                assert msg is not None
                count += 1 + len(b.get(1000) or [])

    run(main())
