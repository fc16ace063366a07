"""The kernel filter: nftables drops banned and flooding sources before the SBC reads them.

Optional first line of defence (``kernel_filter`` in ``security.yaml``,
docs/security.md). :mod:`~sbc.kernel.ruleset` and :mod:`~sbc.kernel.sync`
are pure (text and diffs); :mod:`~sbc.kernel.nftables` (libnftables),
:mod:`~sbc.kernel.netlink` (counters), :mod:`~sbc.kernel.filter` and
:mod:`~sbc.kernel.runtime` (what ``sbc/app.py`` holds) talk to the kernel.
Nothing is imported here, so the pure modules can be imported alone.
"""
