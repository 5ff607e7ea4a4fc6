"""The admin channel: the process that holds the catalog runs other processes' commands.

DuckDB lets one process write the catalog. Whichever Outpost process opened it (the GUI,
`outpost hub serve`, any CLI command) listens on a Unix socket under ``$OUTPOST_HOME``;
an `outpost` command that finds the catalog held sends its argv there and relays what
comes back (stdout, stderr, exit code). Only the owner of the home may connect.
"""
from core.admin.client import HolderGone, NoHolder, forward
from core.admin.server import AdminServer, Handler, Request, Session
from core.admin.sockets import socket_path

__all__ = ["AdminServer", "Handler", "HolderGone", "NoHolder", "Request", "Session", "forward",
           "socket_path"]
