"""Boards over their serial console: login, resumable file transfer, provisioning.

``console`` speaks to a shell on a pyserial URL, ``transfer`` moves files over it
in checksummed chunks that survive a dropped console, ``provision`` is the
operator's side of ``edge board provision/status`` and ``agent`` the board's
side (``edge board apply/report``), which the installed bundle provides.
"""
