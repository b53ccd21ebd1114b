"""One Modbus client per wire, shared by every unit on it, with typed errors.

:func:`open_link` turns a connection into a :class:`ModbusLink`:

- ``modbus-tcp://HOST:PORT``: Modbus TCP (a gateway, or an instrument speaking TCP);
- ``socket://HOST:PORT``: Modbus RTU frames over a TCP stream (a serial device server);
  the bytes are those pyserial's ``socket://`` would carry, but the link reads the socket
  directly, since pymodbus' serial client polls a ``socket://`` port byte by byte;
- anything else (``/dev/ttyUSB0``, ``COM3``, ``rfc2217://...``): Modbus RTU on a serial
  port through pyserial.

Two furnaces on one RS-485 adapter share one link (and one lock), as they must: a serial
port can be opened once. Errors come out typed (:mod:`athanor.drivers.errors`): no reply
is :class:`InstrumentTimeout`, bytes that never form a valid reply (bad CRC, broken
header) are :class:`ProtocolError`, a refused or dropped connection is
:class:`ConnectionLost`, an exception reply is :class:`InstrumentFault` with the decoded
reason (:class:`AddressAbsent` for exception 02, a register the unit does not have).
Nothing is retried here; callers retry what is safe to repeat.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from athanor.drivers.errors import ConnectionLost, InstrumentFault, InstrumentTimeout, ProtocolError

# pymodbus logs every timeout at ERROR; without a handler of the application's own these
# would land on stderr, while callers already get them as typed errors.
logging.getLogger("pymodbus").addHandler(logging.NullHandler())

EXCEPTION_REASONS = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "device failure",
    0x05: "acknowledge (busy with a long command)",
    0x06: "device busy",
    0x07: "negative acknowledge",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}
# The gateway answered for a unit that did not: to the caller that is a timeout.
_GATEWAY_TIMEOUTS = {0x0A, 0x0B}
ILLEGAL_DATA_ADDRESS = 0x02


class AddressAbsent(InstrumentFault):
    """Exception 02: the unit has no register at that address (an option or model it lacks)."""


class ModbusLink:
    """A Modbus client on one transport (see the module docstring for the URLs).

    Parameters
    ----------
    connection
        Serial device path, pyserial URL, ``socket://HOST:PORT`` or ``modbus-tcp://HOST:PORT``.
    io_timeout
        Wall seconds to wait for a reply.
    baudrate, parity
        Serial settings (ignored on TCP transports).
    """

    def __init__(
        self,
        connection: str,
        *,
        io_timeout: float = 1.0,
        baudrate: int = 9600,
        parity: str = "N",
    ) -> None:
        if not io_timeout > 0:
            raise ValueError(f"io_timeout must be > 0 wall seconds, got {io_timeout!r}")
        self.connection = connection
        self.io_timeout = io_timeout
        self.lock = threading.RLock()
        self.users = 0
        self._received = False
        parts = urlsplit(connection)
        self.client: ModbusTcpClient | ModbusSerialClient
        if parts.scheme in ("modbus-tcp", "socket"):
            if not parts.hostname or parts.port is None:
                raise ValueError(f"{connection!r} must name a host and a port: HOST:PORT")
            framer = FramerType.SOCKET if parts.scheme == "modbus-tcp" else FramerType.RTU
            self.client = ModbusTcpClient(
                parts.hostname,
                port=parts.port,
                framer=framer,
                timeout=io_timeout,
                retries=0,
                trace_packet=self._trace,
            )
        else:
            self.client = ModbusSerialClient(
                connection,
                baudrate=baudrate,
                parity=parity,
                timeout=io_timeout,
                retries=0,
                trace_packet=self._trace,
            )
        # We close and reopen on failures ourselves; pymodbus must not count them.
        self.client.set_max_no_responses(1 << 30)
        self.client.transaction.count_until_disconnect = 1 << 30

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending and data:
            self._received = True
        return data

    def read(self, unit: int, address: int, count: int = 1) -> list[int]:
        """Read ``count`` holding registers (function 03) from ``unit``."""
        with self.lock:
            self._received = False
            try:
                reply = self.client.read_holding_registers(address, count=count, device_id=unit)
            except ModbusException as exc:
                raise self._transport_error(exc, unit, f"reading register {address}") from None
        if reply.isError():
            raise self._exception_reply(reply, unit, f"reading register {address}")
        return reply.registers

    def write(self, unit: int, address: int, values: list[int]) -> None:
        """Write one (function 06) or several (function 16) holding registers."""
        what = f"writing register {address} = {values[0] if len(values) == 1 else values}"
        with self.lock:
            self._received = False
            try:
                if len(values) == 1:
                    reply = self.client.write_register(address, values[0], device_id=unit)
                else:
                    reply = self.client.write_registers(address, values, device_id=unit)
            except ModbusException as exc:
                raise self._transport_error(exc, unit, what) from None
        if reply.isError():
            raise self._exception_reply(reply, unit, what)

    def close(self) -> None:
        with self.lock:
            self.client.close()

    def _transport_error(self, exc: ModbusException, unit: int, what: str) -> Exception:
        # A late or partial reply must not be taken for the answer to the next request.
        self.client.close()
        where = f"{self.connection} unit {unit}"
        if isinstance(exc, ConnectionException):
            return ConnectionLost(f"{where}: connection failed or dropped while {what}")
        if isinstance(exc, ModbusIOException) and not self._received:
            return InstrumentTimeout(f"{where}: no reply within {self.io_timeout:g} s while {what}")
        return ProtocolError(f"{where}: reply could not be decoded (bad CRC or frame) while {what}")

    def _exception_reply(self, reply: ModbusPDU, unit: int, what: str) -> Exception:
        code = reply.exception_code
        reason = EXCEPTION_REASONS.get(code, f"exception code {code:#04x}")
        detail = f"{self.connection} unit {unit}, {what}: exception {code:#04x}"
        if code in _GATEWAY_TIMEOUTS:
            return InstrumentTimeout(f"{reason} ({detail})")
        if code == ILLEGAL_DATA_ADDRESS:
            return AddressAbsent(reason, detail=detail)
        return InstrumentFault(reason, detail=detail)


_links: dict[str, ModbusLink] = {}
_links_lock = threading.Lock()


def open_link(
    connection: str, *, io_timeout: float = 1.0, baudrate: int = 9600, parity: str = "N"
) -> ModbusLink:
    """The link for ``connection``, shared with every other user of the same wire.

    The first user's timeout and serial settings apply; release with :func:`close_link`.
    """
    with _links_lock:
        link = _links.get(connection)
        if link is None:
            link = ModbusLink(connection, io_timeout=io_timeout, baudrate=baudrate, parity=parity)
            _links[connection] = link
        link.users += 1
        return link


def close_link(link: ModbusLink) -> None:
    """Release one user of ``link``; the port closes when the last one leaves."""
    with _links_lock:
        link.users -= 1
        if link.users <= 0:
            _links.pop(link.connection, None)
            link.close()
