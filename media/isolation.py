"""What confines an FFmpeg child beyond its resource limits: who it runs as and what it can reach.

FFmpeg parses hostile files, so the child is treated as compromised. The rule: it reaches nothing
but its job's directory and the read-only system files it needs to run, and nothing of the worker.
Layers, each applied wherever the kernel and the worker's privileges allow it, independent of the
others (README, "Media processing"):

1. An empty environment (`media.run`): no key of ours is in the child's own memory.
2. The worker is made non-dumpable (`protect_worker`): a child of the same user cannot read the
   worker's /proc/<pid>/environ or mem, nor ptrace it; only CAP_SYS_PTRACE could.
3. Another user (`media_ids`, GENGATE_MEDIA_USER, "nobody") when the worker may switch users (root
   with the capabilities below): the child has no capability and owns nothing of the worker's.
   Its job directory is handed to that user before each run (`hand_over`).
4. Landlock (kernel 5.13+, when the container's seccomp profile allows it): file access only beneath
   the job's directory (read-write) and system directories (read-only); no /proc, so no other
   process's environ; no TCP bind or connect (ABI 4+); no abstract Unix sockets or signals outside
   (ABI 6+); and no ptrace of any process outside its own domain, whatever its user.
5. A seccomp filter (x86_64, aarch64): no socket() at all, no io_uring (which could open sockets
   past the filter), no ptrace, process_vm_*, pidfd_getfd, bpf, perf, userfaultfd, keyrings,
   namespaces or mounts. Unprivileged, thanks to no_new_privs.

The filter and the Landlock ruleset are built in the parent; between fork and exec the child only
makes a few prctl/syscall calls (`Confinement.apply`), as the rlimits are set there too.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import pwd
import shutil
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2

# Capabilities the worker needs to run the child as another user and still read and remove what
# it wrote: CAP_CHOWN (0), CAP_DAC_OVERRIDE (1), CAP_SETGID (6), CAP_SETUID (7).
_SWITCH_CAPS = (1 << 0) | (1 << 1) | (1 << 6) | (1 << 7)

_libc = ctypes.CDLL(None, use_errno=True)


def _syscall(nr: int, *args: object) -> int:
    """syscall(2) with every integer passed as a full C long (the kernel reads whole registers)."""
    return _libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) if isinstance(a, int) else a for a in args))


class IsolationError(RuntimeError):
    """The child could not be confined as configured (a missing user, a kernel refusing a layer that
    was available a moment ago); the run does not happen."""


# -- layer 2: the worker itself ----------------------------------------------------------------------

def protect_worker() -> bool:
    """Make this process non-dumpable: its /proc/<pid>/environ, mem and fd links become readable
    only with CAP_SYS_PTRACE, and it cannot be ptraced by its own user. Idempotent; the flag is kept
    across fork, so threads and children the worker makes later keep it until they exec."""
    return _libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0


# -- layer 3: another user ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Ids:
    uid: int
    gid: int
    name: str


def media_ids(user: str) -> Ids | None:
    """The user the child runs as, or None when it runs as the worker: no user configured, the
    worker may not switch users, or it already is that user. IsolationError for an unknown user
    while the worker could switch (running FFmpeg as root instead would be the worst outcome)."""
    if not user or not _may_switch_users():
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise IsolationError(f"GENGATE_MEDIA_USER {user!r} does not exist on this worker; create it "
                             "or set GENGATE_MEDIA_USER to an existing unprivileged user") from None
    if entry.pw_uid == 0:
        raise IsolationError(f"GENGATE_MEDIA_USER {user!r} is root; FFmpeg must run unprivileged")
    if entry.pw_uid == os.geteuid():
        return None
    return Ids(entry.pw_uid, entry.pw_gid, user)


def _may_switch_users() -> bool:
    if os.geteuid() != 0:
        return False
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16) & _SWITCH_CAPS == _SWITCH_CAPS
    return False


def hand_over(workdir: Path, ids: Ids | None) -> None:
    """Give the job's directory tree to the child's user: it must read its inputs and write its
    outputs there, and nowhere else. The worker (root) still reads and removes everything."""
    if ids is None:
        return
    _check_reachable(workdir, ids)
    os.chown(workdir, ids.uid, ids.gid)
    for dirpath, dirnames, filenames in os.walk(workdir):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), ids.uid, ids.gid, follow_symlinks=False)


def _check_reachable(workdir: Path, ids: Ids) -> None:
    """IsolationError unless the child's user may walk down to `workdir` (search permission on
    every parent), naming the directory in the way: a clear error instead of FFmpeg's EACCES."""
    for parent in Path(os.path.realpath(workdir)).parents:
        st = parent.stat()
        if st.st_uid == ids.uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid == ids.gid:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            raise IsolationError(f"FFmpeg runs as {ids.name!r}, who may not enter {parent}: make media jobs' "
                                 "directories elsewhere (GENGATE_MEDIA_WORK_DIR) or open that directory")


def take_in(path: Path, workdir: Path) -> Path:
    """A private copy of `path` inside `workdir`, for a child that may not read the original (a file
    of the worker's storage, readable by the worker's user only)."""
    copy = workdir / ("input" + "".join(path.suffixes[-1:]))
    shutil.copyfile(path, copy)
    return copy


# -- layer 4: Landlock -------------------------------------------------------------------------------

_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
# Access rights to the file system (ABI 1: bits 0-12; 2: REFER; 3: TRUNCATE; 5: IOCTL_DEV).
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | (1 << 14) | (1 << 15)
_NET_TCP = (1 << 0) | (1 << 1)  # bind and connect
_SCOPES = (1 << 0) | (1 << 1)  # abstract Unix sockets, signals
# What the child may read (and execute) besides its job directory: the program, its libraries and
# the loader's cache, fonts, time zones, randomness, and the CPU topology codecs size threads by.
# Not /proc (other processes' environ), not /home, /root, /data, /var, /tmp or the rest of /etc.
READ_ONLY_PATHS = (
    "/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/opt",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/fonts", "/etc/localtime",
    "/usr/share/zoneinfo", "/var/cache/fontconfig", "/dev/urandom", "/dev/random",
    "/sys/devices/system/cpu",
)
READ_WRITE_PATHS = ("/dev/null",)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is absent or refused (an old kernel, a
    kernel without the LSM, a seccomp profile that denies its system calls)."""
    if platform.system() != "Linux" or platform.machine() not in _SECCOMP_ARCH:
        return 0
    abi = _syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)
    return max(0, abi)


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= 1 << 13
    if abi >= 3:
        rights |= 1 << 14
    if abi >= 5:
        rights |= 1 << 15
    return rights


def landlock_ruleset(abi: int, writable: list[Path], readable: list[Path]) -> int:
    """A ruleset fd (close-on-exec) allowing everything beneath `writable`, reading and executing
    beneath `readable` and the system paths, and no TCP; the child restricts itself with it."""
    handled = _fs_rights(abi)
    if abi >= 6:
        attr = struct.pack("QQQ", handled, _NET_TCP, _SCOPES)
    elif abi >= 4:
        attr = struct.pack("QQ", handled, _NET_TCP)
    else:
        attr = struct.pack("Q", handled)
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = _syscall(_SYS_LANDLOCK_CREATE_RULESET, buf, len(attr), 0)
    if fd < 0:
        raise IsolationError(f"Landlock refused a ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        read = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
        for path in writable:
            _allow(fd, path, handled)
        for path in [*readable, *map(Path, READ_ONLY_PATHS)]:
            _allow(fd, path, read)
        for path in map(Path, READ_WRITE_PATHS):
            _allow(fd, path, read | _FS_WRITE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _allow(ruleset: int, path: Path, rights: int) -> None:
    try:
        target = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # not on this system: nothing to allow
    try:
        if not stat.S_ISDIR(os.fstat(target).st_mode):
            rights &= _FS_FILE_RIGHTS
        rule = ctypes.create_string_buffer(struct.pack("=Qi", rights, target), 12)
        if _syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH, rule, 0) != 0:
            raise IsolationError(f"Landlock refused a rule for {path}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(target)


# -- layer 5: seccomp --------------------------------------------------------------------------------

# audit arch, then the system calls denied with EPERM, by architecture.
_SECCOMP_ARCH: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (0xC000003E, {
        "socket": 41, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "bpf": 321,
        "perf_event_open": 298, "userfaultfd": 323, "add_key": 248, "request_key": 249, "keyctl": 250,
        "unshare": 272, "setns": 308, "mount": 165, "fsopen": 430, "open_tree": 428, "move_mount": 429,
    }),
    "aarch64": (0xC00000B7, {
        "socket": 198, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "pidfd_getfd": 438,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "bpf": 280,
        "perf_event_open": 241, "userfaultfd": 282, "add_key": 217, "request_key": 218, "keyctl": 219,
        "unshare": 97, "setns": 268, "mount": 40, "fsopen": 430, "open_tree": 428, "move_mount": 429,
    }),
}
_X32_SYSCALL_BIT = 0x40000000
_RET_KILL_PROCESS, _RET_ERRNO, _RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06


def seccomp_program() -> bytes | None:
    """The BPF filter for this machine's architecture, or None where we have no table for it."""
    arch = _SECCOMP_ARCH.get(platform.machine()) if platform.system() == "Linux" else None
    if arch is None:
        return None
    audit_arch, denied = arch
    deny = _RET_ERRNO | errno.EPERM
    ops = [
        (_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (_JEQ_K, 1, 0, audit_arch),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),  # another ABI (i386 on x86_64): numbers would not match
        (_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
    ]
    if audit_arch == 0xC000003E:
        ops += [(_JGE_K, 0, 1, _X32_SYSCALL_BIT), (_RET_K, 0, 0, deny)]  # the x32 ABI
    for nr in sorted(denied.values()):
        ops += [(_JEQ_K, 0, 1, nr), (_RET_K, 0, 0, deny)]
    ops.append((_RET_K, 0, 0, _RET_ALLOW))
    return b"".join(struct.pack("HBBI", *op) for op in ops)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


# -- the whole ---------------------------------------------------------------------------------------

@dataclass
class Confinement:
    """Everything the child applies to itself between fork and exec, prepared by the parent."""

    ids: Ids | None
    landlock_fd: int | None
    seccomp: bytes | None

    def __post_init__(self) -> None:
        self._filter = ctypes.create_string_buffer(self.seccomp, len(self.seccomp)) if self.seccomp else None
        self._prog = _SockFprog(len(self.seccomp) // 8, ctypes.addressof(self._filter)) if self._filter else None

    @property
    def layers(self) -> list[str]:
        names = ["empty environment", "non-dumpable worker"]
        if self.ids is not None:
            names.append(f"user {self.ids.name}")
        if self.landlock_fd is not None:
            names.append("landlock")
        if self.seccomp is not None:
            names.append("seccomp")
        return names

    def apply(self) -> None:
        """Run in the child after its user was switched (Popen's user/group) and before exec: no
        new privileges, then Landlock, then the seccomp filter (which refuses what comes after)."""
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "no_new_privs")
        if self.landlock_fd is not None:
            if _syscall(_SYS_LANDLOCK_RESTRICT_SELF, self.landlock_fd, 0) != 0:
                raise OSError(ctypes.get_errno(), "landlock_restrict_self")
        if self._prog is not None:
            if _libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(self._prog), 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "seccomp")

    def close(self) -> None:
        if self.landlock_fd is not None:
            os.close(self.landlock_fd)
            self.landlock_fd = None


def confine(workdir: Path, user: str, readable: list[Path] | None = None) -> Confinement:
    """The confinement of one run in `workdir`, with every layer this worker and kernel allow."""
    ids = media_ids(user)
    abi = landlock_abi()
    fd = landlock_ruleset(abi, [workdir], readable or []) if abi else None
    return Confinement(ids, fd, seccomp_program())
