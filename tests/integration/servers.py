"""Starting and stopping real server processes in tests (loopback only): the demo's own helpers."""

from diver.llm.local_server import free_port, stop_process, wait_for_http

stop = stop_process

__all__ = ["free_port", "stop", "wait_for_http"]
