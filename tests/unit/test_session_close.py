"""Session.close: devices disconnect on their own session's loop; exit hooks go."""

import asyncio
import atexit
import gc
import weakref

import pytest
from bluesky import RunEngine

from labsky.config import load_profile
from labsky.session import Session


class Link:
    """A device holding an instrument link: records the loop it is closed on."""

    def __init__(self):
        self.closed_on = None

    async def disconnect(self) -> None:
        self.closed_on = asyncio.get_running_loop()


@pytest.fixture
def profile(tmp_path):
    (tmp_path / "profile.yaml").write_text("description: two sessions\n")
    return load_profile(tmp_path)


def session_of(profile, link):
    return Session(
        profile=profile,
        run_engine=RunEngine({}, call_returns_result=True),
        devices={"link": link},
        declarations={},
        device_errors={},
        plans={},
        plan_modules=[],
        groups={},
    )


def test_each_session_disconnects_its_devices_on_its_own_loop(profile):
    first_link, second_link = Link(), Link()
    first = session_of(profile, first_link)
    second = session_of(profile, second_link)  # now bluesky's loop of the process
    try:
        first.close()
        assert first_link.closed_on is first.run_engine.loop
        assert second_link.closed_on is None
        assert second.run_engine.loop.is_running()  # the other session goes on
        assert second.run_engine(_count_nothing()).exit_status == "success"
    finally:
        second.close()
    assert second_link.closed_on is second.run_engine.loop


def _count_nothing():
    import bluesky.plans as bp

    return bp.count([], 1)


def test_close_removes_the_exit_hook_so_a_closed_session_can_go(profile):
    session = session_of(profile, Link())
    atexit.register(session.close)  # as `start` does
    session.close()
    gone = weakref.ref(session)
    del session
    gc.collect()
    assert gone() is None  # the exit hook held it (and its RunEngine) until exit
