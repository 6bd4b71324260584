"""Targets for the board conformance client: the Python emulator, the native C agent, the C
agent under QEMU. Each test that takes `target` runs once per target; a target that is not
built is skipped with the reason."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.board.boardlink import Agent, Link, Target

REPO = Path(__file__).resolve().parents[2]
NATIVE = REPO / "board" / "build" / "native" / "board-agent"
QEMU_ELF = REPO / "board" / "build" / "qemu" / "board-agent.elf"
# QEMU's flash is a small file reached through semihosting: keep the tier fast.
QEMU_GEOMETRY = ["--size", "262144", "--sector-size", "4096", "--page-size", "256"]

TARGETS = {
    "python": Target("python", [sys.executable, "-m", "hal.emulator"], REPO, "hal.emulator"),
    "native": Target("native", [str(NATIVE)], REPO, "board-agent"),
    "qemu": Target("qemu", [sys.executable, str(REPO / "board" / "run_qemu.py")], REPO,
                   "run_qemu", running_clock=True, extra=QEMU_GEOMETRY),
}


def _missing(name: str) -> str | None:
    if name == "native" and not NATIVE.exists():
        return f"{NATIVE.relative_to(REPO)} not built (make board)"
    if name == "qemu":
        if shutil.which("qemu-system-arm") is None:
            return "qemu-system-arm not installed (make board installs it as root)"
        if not QEMU_ELF.exists():
            return f"{QEMU_ELF.relative_to(REPO)} not built (make board)"
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        params = [pytest.param(n, marks=[pytest.mark.qemu] if n == "qemu" else [])
                  for n in getattr(metafunc.module, "TARGET_NAMES", TARGETS)]
        metafunc.parametrize("target", params, indirect=True, scope="module")


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest) -> Target:
    reason = _missing(request.param)
    if reason:
        pytest.skip(reason)
    return TARGETS[request.param]


@pytest.fixture(scope="module")
def shared_agent(target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """One agent per target and module, for tests that do not care about boots."""
    agent = Agent(target, tmp_path_factory.mktemp(f"board-{target.name}") / "dev.flash", [])
    yield agent
    agent.stop()


@pytest.fixture(scope="module")
def shared_link(shared_agent: Agent) -> Iterator[Link]:
    with shared_agent.link() as link:
        yield link


@pytest.fixture
def board(shared_link: Link) -> Link:
    """The shared agent's link, settled: nothing pending, a new session (HELLO)."""
    shared_link.quiet(0.05)
    shared_link.unsolicited.clear()
    shared_link.hello()
    return shared_link


@pytest.fixture
def start(target: Target, tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    """Starts fresh agents of the target (stopped at the end of the test)."""
    agents: list[Agent] = []

    def _start(*args: str, flash: Path | None = None) -> Agent:
        agent = Agent(target, flash or tmp_path / "dev.flash", list(args))
        agents.append(agent)
        return agent

    yield _start
    for agent in agents:
        agent.stop()
