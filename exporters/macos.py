"""The only code that talks to macOS: sysctl, Mach host statistics, notify(3), ioreg,
ifconfig.

Each function returns raw bytes, an int or command output; the collectors decode them with
pure functions that are tested on fixtures of real macOS output (nothing here runs on the
Linux CI). ctypes is used rather than spawning `sysctl`: a scrape must stay fast, and
Python has no binding for these calls. Listed in docs/macos.md.
"""

from __future__ import annotations

import ctypes
import functools
import os
import subprocess

# <sys/sysctl.h>, <sys/socket.h>, <net/if_mib.h>: net.link.generic.ifdata.<index>.general
CTL_NET = 4
PF_LINK = 18
NETLINK_GENERIC = 0
IFMIB_IFDATA = 2
IFDATA_GENERAL = 1
IFMIBDATA_SIZE = 180  # sizeof(struct ifmibdata) on macOS 11+ (if_data64 is #pragma pack(4))

# <mach/host_info.h>: host_statistics64(HOST_VM_INFO64) fills a struct vm_statistics64.
HOST_VM_INFO64 = 4
VM_STATISTICS64_SIZE = 152  # HOST_VM_INFO64_COUNT (38) * sizeof(integer_t)

# <OSThermalNotification.h>: readable by any user, unlike powermetrics.
THERMAL_PRESSURE_KEY = b"com.apple.system.thermalpressurelevel"

COMMAND_TIMEOUT_SECONDS = 1.5


@functools.cache
def _libsystem() -> ctypes.CDLL:
    lib = ctypes.CDLL("/usr/lib/libSystem.B.dylib", use_errno=True)
    lib.sysctlbyname.argtypes = [
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.c_void_p,
        ctypes.c_size_t,
    ]
    lib.sysctl.argtypes = [
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.c_void_p,
        ctypes.c_size_t,
    ]
    lib.mach_host_self.restype = ctypes.c_uint
    lib.host_statistics64.argtypes = [
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_uint),
    ]
    lib.notify_register_check.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
    lib.notify_get_state.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_uint64)]
    return lib


def _raise_errno(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def sysctl_bytes(name: str) -> bytes:
    """The raw value of a named sysctl (`sysctlbyname`)."""
    lib = _libsystem()
    size = ctypes.c_size_t(0)
    if lib.sysctlbyname(name.encode(), None, ctypes.byref(size), None, 0) != 0:
        _raise_errno(f"sysctl {name}")
    buffer = ctypes.create_string_buffer(size.value)
    if lib.sysctlbyname(name.encode(), buffer, ctypes.byref(size), None, 0) != 0:
        _raise_errno(f"sysctl {name}")
    return buffer.raw[: size.value]


def sysctl_int(name: str) -> int:
    """An integer sysctl (4 or 8 bytes, little-endian on every Mac macOS 14 runs on)."""
    return int.from_bytes(sysctl_bytes(name), "little", signed=False)


def ifmib_bytes(index: int) -> bytes:
    """`struct ifmibdata` of one interface: the 64-bit counters `netstat -ib` shows.

    Not reachable by name: `ifdata` is a handler node, so the numeric MIB is used.
    """
    lib = _libsystem()
    mib = (ctypes.c_int * 6)(CTL_NET, PF_LINK, NETLINK_GENERIC, IFMIB_IFDATA, index, IFDATA_GENERAL)
    buffer = ctypes.create_string_buffer(IFMIBDATA_SIZE)
    size = ctypes.c_size_t(IFMIBDATA_SIZE)
    if lib.sysctl(mib, 6, buffer, ctypes.byref(size), None, 0) != 0:
        _raise_errno(f"sysctl net.link.generic.ifdata.{index}.general")
    return buffer.raw[: size.value]


@functools.cache
def _host_port() -> int:
    # One send right for the life of the process; asking per scrape would leak rights.
    return _libsystem().mach_host_self()


def host_vm_statistics64() -> bytes:
    """`struct vm_statistics64` from host_statistics64(HOST_VM_INFO64), what vm_stat prints."""
    lib = _libsystem()
    buffer = ctypes.create_string_buffer(VM_STATISTICS64_SIZE)
    count = ctypes.c_uint(VM_STATISTICS64_SIZE // 4)
    status = lib.host_statistics64(_host_port(), HOST_VM_INFO64, buffer, ctypes.byref(count))
    if status != 0:
        raise OSError(f"host_statistics64 returned kern_return_t {status}")
    return buffer.raw[: count.value * 4]


@functools.cache
def _thermal_token() -> int:
    token = ctypes.c_int(0)
    status = _libsystem().notify_register_check(THERMAL_PRESSURE_KEY, ctypes.byref(token))
    if status != 0:
        raise OSError(f"notify_register_check returned {status}")
    return token.value


def thermal_pressure_level() -> int:
    """OSThermalPressureLevel: 0 nominal, 1 moderate, 2 heavy, 3 trapping, 4 sleeping."""
    state = ctypes.c_uint64(0)
    status = _libsystem().notify_get_state(_thermal_token(), ctypes.byref(state))
    if status != 0:
        raise OSError(f"notify_get_state returned {status}")
    return state.value


def _run(argv: list[str]) -> str:
    return subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=COMMAND_TIMEOUT_SECONDS
    ).stdout


def ioreg_accelerators() -> str:
    """`ioreg -r -d 1 -w 0 -c IOAccelerator`: the GPU's PerformanceStatistics, no root needed.

    -w 0: otherwise ioreg clips each line to the width of a terminal on its stdout or stdin
    (an exporter started from a shell), cutting the statistics line before its end."""
    return _run(["/usr/sbin/ioreg", "-r", "-d", "1", "-w", "0", "-c", "IOAccelerator"])


def ioreg_block_storage() -> bytes:
    """`ioreg -a -r -c IOBlockStorageDriver -d 2`: each disk driver's Statistics and, one
    level down, its IOMedia (BSD name, block size), as a plist. No root needed."""
    return _run_bytes(["/usr/sbin/ioreg", "-a", "-r", "-c", "IOBlockStorageDriver", "-d", "2"])


def ioreg_network_interfaces() -> bytes:
    """`ioreg -a -t -r -c IONetworkInterface -d 1`: every network interface (BSD name,
    IOInterfaceType) inside the chain of its ancestors (its controller's class), as a plist."""
    return _run_bytes(["/usr/sbin/ioreg", "-a", "-t", "-r", "-c", "IONetworkInterface", "-d", "1"])


def ifconfig(device: str) -> str:
    """`ifconfig DEVICE`: a bridge's member interfaces (the "member:" lines)."""
    return _run(["/sbin/ifconfig", device])


def _run_bytes(argv: list[str]) -> bytes:
    return subprocess.run(
        argv, capture_output=True, check=True, timeout=COMMAND_TIMEOUT_SECONDS
    ).stdout
