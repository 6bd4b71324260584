"""What a board announces or answers is checked before the host uses it: a host never divides
by a board's zero or dates a board's NaN (a board that sends them is a board it cannot use:
MalformedPayload, a LinkError, exit 4)."""

from __future__ import annotations

import math
import os
import struct
import time

import pytest

from hal.errors import DeviceBusyError
from hal.serial.framing import MalformedPayload
from hal.serial.messages import WALL_RANGE, Hello, unpack_time
from hal.serial.port import Port, check_local
from policy.errors import UsageError

GOOD = Hello(1, 65_600, 16, 0, 1 << 20, 4096, 256, 64, 1, 0, 7, 1, 0.0)


def hello_with(**fields: int) -> bytes:
    return Hello(**{**GOOD.__dict__, **fields}).pack()


def test_a_good_hello_is_taken_as_it_is() -> None:
    assert Hello.unpack(GOOD.pack()) == GOOD


@pytest.mark.parametrize(("fields", "says"), [
    ({"sector_size": 0}, "sector 0"),
    ({"page_size": 0}, "page 0"),
    ({"flash_size": 0}, "flash size 0"),
    ({"sector_size": 4000}, "sector 4000"),  # pages do not tile it
    ({"flash_size": (1 << 20) + 4096 // 2}, "flash size 1050624"),
    ({"max_payload": 100}, "max_payload 100 outside 512..65600"),
    ({"max_payload": 70_000}, "max_payload 70000"),
    ({"window": 0}, "a window of 0"),
])
def test_a_hello_a_host_cannot_work_with_is_malformed(fields: dict[str, int], says: str) -> None:
    with pytest.raises(MalformedPayload, match=says):
        Hello.unpack(hello_with(**fields))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1e300, 1e300,
                                   WALL_RANGE[1]])
def test_a_wall_clock_reading_no_date_can_hold_is_malformed(value: float) -> None:
    with pytest.raises(MalformedPayload, match="the board's clock reads"):
        unpack_time(struct.pack("<d", value), "CLOCK_WALL", *WALL_RANGE)


def test_a_negative_or_nan_monotonic_reading_is_malformed() -> None:
    for value in (-0.5, math.nan):
        with pytest.raises(MalformedPayload):
            unpack_time(struct.pack("<d", value), "CLOCK_MONOTONIC", 0.0, math.inf)
    assert unpack_time(struct.pack("<d", 12.5), "CLOCK_MONOTONIC", 0.0, math.inf) == 12.5


@pytest.mark.parametrize("url", [
    "socket://10.0.0.1:5555", "rfc2217://10.0.0.1:5555", "socket://[::ffff:10.0.0.1]:5555",
    "socket://0x0a000001:5555", "socket://example.com:80", "socket://:5555",
    "spy:///dev/ttyS0", "hwgrep://.*", "alt:///dev/ttyS0?class=PosixPollSerial",
])
def test_a_port_url_off_the_loopback_interface_is_refused_before_any_connection(url: str) -> None:
    with pytest.raises(UsageError):
        check_local(url)
    with pytest.raises(UsageError):  # the port refuses it itself, whoever opens it
        Port(url, write_timeout=1.0)


@pytest.mark.parametrize("url", ["/dev/ttyUSB0", "socket://127.0.0.1:5555",
                                 "socket://localhost:5555", "rfc2217://[::1]:5555", "loop://"])
def test_device_paths_loop_and_loopback_sockets_are_ports(url: str) -> None:
    check_local(url)


def test_a_port_another_host_holds_is_waited_for_then_busy() -> None:
    controller, worker = os.openpty()
    path = os.ttyname(worker)
    first = Port(path, write_timeout=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(DeviceBusyError, match="another process is using the port"):
            Port(path, write_timeout=1.0, lock_wait=0.3)
        assert time.monotonic() - started >= 0.3
        first.close()
        Port(path, write_timeout=1.0).close()  # free again once the first host lets go
    finally:
        first.close()
        os.close(worker)
        os.close(controller)
