"""The keeper: a small process between the supervisor and each child, so that nothing the child
starts outlives it (Linux only: prctl, /proc).

    supervisor --> keeper (PR_SET_CHILD_SUBREAPER) --> the child --> its own processes ...

The supervisor runs `python -I -S runtime/keeper.py SUPERVISOR_PID PID_FD ARGV...` (`command`).
The keeper
- is a child subreaper: whatever the child starts and then leaves (a `subprocess.Popen` it
  forgets, a double fork with setsid) is reparented to the keeper, not to init;
- starts ARGV as the child, in its own process group, with every descriptor the keeper was
  given (the readiness pipe among them), with TICKMESH_PARENT_PID set to the keeper's pid (the
  child's lifeline, runtime.lifeline) and PR_SET_PDEATHSIG = SIGKILL set before exec;
- writes the child's pid on PID_FD, and closes it (the supervisor shows that pid);
- passes SIGTERM, SIGINT and SIGHUP on to the child, and answers KILL (SIGUSR1) by killing
  the child with SIGKILL (which, unlike the others, it cannot catch and pass on);
- dies with the supervisor: its PR_SET_PDEATHSIG is SIGTERM, which it catches; when its
  parent is then no longer the supervisor, it kills the child;
- once the child has exited, kills its process group and every process left to the keeper
  (SIGKILL, round after round, until it has no child process left), and exits as the child
  did: with its exit code, or killed by the same signal (so the supervisor reads the same
  code, negative for a signal, as if there were no keeper).

Only a SIGKILL of the keeper itself (whose pid nothing shows) skips that clean-up: the child
then dies (PR_SET_PDEATHSIG), what it started does not.

It imports only the standard library (no site, no tickmesh package: about 10 ms and a few MB),
and waits for signals with sigwaitinfo, so it uses no CPU while the child runs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PARENT_ENV = "TICKMESH_PARENT_PID"  # runtime.spec.PARENT_ENV (not imported: stdlib only)
KILL = signal.SIGUSR1
"""Sent to the keeper: kill the child (SIGKILL)."""
PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
WATCHED = {signal.SIGCHLD, KILL, *PASSED_ON}

_prctl = ctypes.CDLL(None, use_errno=True).prctl


def command(supervisor_pid: int, pid_fd: int, argv: list[str]) -> list[str]:
    """The command line that runs `argv` under a keeper (-I -S: no site, no environment)."""
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), str(supervisor_pid),
            str(pid_fd), *argv]


def main(args: list[str]) -> None:
    supervisor, pid_fd, argv = int(args[0]), int(args[1]), args[2:]
    _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # not ignored (that would reap the child)
    signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
    if os.getppid() != supervisor:  # the supervisor died before PR_SET_PDEATHSIG took effect
        os._exit(1)
    os.set_inheritable(pid_fd, False)
    child = _spawn(argv, dict(os.environ, **{PARENT_ENV: str(os.getpid())}))
    try:
        os.write(pid_fd, b"%d\n" % child)
        os.close(pid_fd)
    except OSError:
        pass  # the supervisor stopped listening
    code = _keep(child, supervisor)
    _kill_all(child)
    _exit_as(code)


def _spawn(argv: list[str], env: dict[str, str]) -> int:
    """Fork and exec `argv` (argv[0] a path) as the child; returns its pid."""
    keeper = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    try:  # the child, before exec: its lifeline, its group, the default signal handling
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != keeper:
            os._exit(1)
        os.setpgid(0, 0)
        for signum in (signal.SIGPIPE, signal.SIGXFSZ):  # ignored by Python, not by the child
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        os.execve(argv[0], argv, env)
    except BaseException as exc:  # noqa: BLE001 - nothing may escape a forked child
        os.write(2, f"keeper: cannot run {argv!r}: {exc}\n".encode())
    os._exit(127)


def _keep(child: int, supervisor: int) -> int:
    """Relay signals to the child until it exits; returns its exit code (negative: the signal
    that killed it). The child is left unreaped (a zombie), so that its pid, and with it its
    process group's id, cannot be reused before _kill_all."""
    while True:
        signum = signal.sigwaitinfo(WATCHED).si_signo
        if signum == signal.SIGCHLD:
            code = _reap_others(child)
            if code is not None:
                return code
        elif signum == KILL or os.getppid() != supervisor:  # asked, or the supervisor died
            os.kill(child, signal.SIGKILL)
        else:
            os.kill(child, signum)


def _reap_others(child: int) -> int | None:
    """Reap every exited process but the child; the child's exit code if it has exited."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return None
        if info is None:
            return None
        if info.si_pid == child:
            return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        os.waitpid(info.si_pid, 0)


def _kill_all(child: int) -> None:
    """Kill the child's process group and every process left to the keeper, until none is."""
    try:
        os.killpg(child, signal.SIGKILL)  # its id is still the (unreaped) child's pid
    except ProcessLookupError:
        pass
    while True:
        for pid in _children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(-1, 0)  # one died; its own children are the keeper's now
        except ChildProcessError:
            return


def _children() -> list[int]:
    """The keeper's child processes (from /proc, with or without CONFIG_PROC_CHILDREN)."""
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as listing:
            return [int(pid) for pid in listing.read().split()]
    except FileNotFoundError:
        pass
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == me:
                children.append(int(entry))
    return children


def _exit_as(code: int) -> None:
    """Exit with `code`, or, if negative, be killed by that signal."""
    if code >= 0:
        os._exit(code)
    signum = -code
    _prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # relaying a SIGSEGV must not dump the keeper's core
    if signum not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # a signal whose default action does not end a process


if __name__ == "__main__":
    main(sys.argv[1:])
