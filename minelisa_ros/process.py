"""Running the node as a process: signals, the executor thread, an orderly shutdown.

rclpy's own SIGINT handler shuts the ROS context down at once, under callbacks that
are still running: their publishers fail ("publisher's context is invalid") and a
service destroyed before it answers leaves "Task exception was never retrieved:
cannot use Destroyable". Here a signal only asks to stop; the node refuses new
work, the running calls finish and answer, and only then do the executor, the node
and the context go, in that order.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from rclpy.exceptions import InvalidHandle
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions

# Waits for the running model call and callbacks: launch sends SIGTERM 5 s after SIGINT.
DRAIN_TIMEOUT_S = 4.0


class _Stop:
    """Set by SIGINT/SIGTERM; while the main thread loads the model it also interrupts it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.interrupt_main = False

    def __call__(self, signum: int, frame: Any) -> None:
        first = not self.event.is_set()
        self.event.set()
        if first and self.interrupt_main:
            raise KeyboardInterrupt  # a model load can take minutes: do not wait for it


def _spin(executor: MultiThreadedExecutor, stop: threading.Event, logger: Any) -> None:
    while not stop.is_set():
        try:
            executor.spin_once(timeout_sec=0.1)
        except Exception as exc:  # a callback's exception, re-raised by the executor
            if _dropped(exc):
                logger.debug(f"dropped a callback of a destroyed entity: {exc}")
            else:
                logger.error(f"callback failed: {type(exc).__name__}: {exc}")


def _dropped(exc: Exception) -> bool:
    """Whether `exc` only says that deactivate, cleanup or shutdown destroyed an entity or
    canceled a timer after the executor's wait had found it ready (ros2/rclpy#1142): its
    pending callback is dropped, which is what destroying or canceling meant."""
    return isinstance(exc, InvalidHandle) or "timer is canceled" in str(exc)


def _autostart(node: Any, stop: _Stop) -> int:
    """Configure and activate; 1 when configure failed."""
    stop.interrupt_main = True
    try:
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            node.get_logger().fatal("configure failed (see the error above); exiting")
            return 1
        node.trigger_activate()
        return 0
    finally:
        stop.interrupt_main = False


def _wait_for_callbacks(executor: MultiThreadedExecutor, timeout: float, logger: Any) -> bool:
    """Wait for every callback the executor started or queued, then collect their errors.

    rclpy 7.1's Executor.shutdown() means to wait but tests the flag it has just set and
    never does; a callback still running (or queued on the thread pool) when the node is
    destroyed fails with "cannot use Destroyable", reported as an exception never
    retrieved. Its thread pool's own shutdown does wait.
    """
    pool = getattr(executor, "_executor", None)
    if pool is not None:
        waiter = threading.Thread(target=pool.shutdown, kwargs={"wait": True}, daemon=True)
        waiter.start()
        waiter.join(timeout)
        if waiter.is_alive():
            return False
    for task in list(getattr(executor, "_futures", [])):
        error = task.exception() if task.done() else None
        if error is not None:
            logger.warning(f"a callback failed: {type(error).__name__}: {error}")
    return True


def run(make_node: Callable[[], Any], argv: Sequence[str] | None = None) -> int:
    """Start the node, spin until SIGINT/SIGTERM (or a failed autostart), stop cleanly."""
    rclpy.init(
        args=list(sys.argv if argv is None else argv),
        signal_handler_options=SignalHandlerOptions.NO,
    )
    stop = _Stop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    node = make_node()
    # Room for every admitted call to wait plus one to refuse the next, beside
    # the camera, standing, monitoring and lifecycle callbacks.
    executor = MultiThreadedExecutor(
        num_threads=node.get_parameter("max_queued_requests").value + 6
    )
    executor.add_node(node)
    halt = threading.Event()  # the executor thread's own: it spins on while calls drain
    spinner = threading.Thread(
        target=_spin, args=(executor, halt, node.get_logger()), name="minelisa-spin"
    )
    spinner.start()
    code = 0
    try:
        if node.get_parameter("autostart").value:
            code = _autostart(node, stop)
        else:
            name = node.get_fully_qualified_name()
            node.get_logger().info(
                f"autostart is off: waiting to be configured (ros2 lifecycle set {name} configure)"
            )
        while code == 0 and not stop.event.wait(0.5) and spinner.is_alive():
            pass
    except KeyboardInterrupt:  # Ctrl-C while the model was loading
        pass
    finally:
        _shut_down(node, executor, halt, spinner)
    return code


def _shut_down(
    node: Any, executor: MultiThreadedExecutor, halt: threading.Event, spinner: threading.Thread
) -> None:
    node.begin_shutdown()  # refuse new requests ("shutting down"), stop the timers
    if not node.wait_idle(DRAIN_TIMEOUT_S):
        node.get_logger().warning("stopping with service calls still running")
    halt.set()
    spinner.join()
    if not _wait_for_callbacks(executor, DRAIN_TIMEOUT_S, node.get_logger()):
        node.get_logger().warning("stopping with callbacks still running")
    executor.shutdown(timeout_sec=0.0)
    node.destroy_node()
    rclpy.try_shutdown()
