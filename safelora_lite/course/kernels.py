"""The Jupyter kernel the course runner starts for each notebook, with its transport encrypted.

ipykernel 7 prints "Kernel is running over TCP without encryption ..." on the user's terminal for
every kernel started without CurveZMQ keys, and papermill's kernel manager provisions none. The
manager here gives each kernel a fresh CurveZMQ key pair (jupyter_client writes it into the kernel's
connection file), so the warning has no cause and code and outputs no longer cross the loopback in
plain text; nothing else the kernel prints (progress, errors) is touched. Where pyzmq has no CURVE or
jupyter_client predates CurveZMQ keys, papermill's own manager is used (and such kernels do not warn).
"""

import zmq
from jupyter_client.manager import AsyncKernelManager


class EncryptedKernelManager(AsyncKernelManager):
    """nbclient's default kernel manager, with a fresh CurveZMQ key pair for each kernel."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.curve_publickey, self.curve_secretkey = zmq.curve_keypair()


def kernel_options() -> dict:
    """Extra arguments for `papermill.execute_notebook`: the encrypting manager where it is supported."""
    if zmq.has("curve") and hasattr(AsyncKernelManager, "curve_secretkey"):
        return {"kernel_manager_class": EncryptedKernelManager}
    return {}
