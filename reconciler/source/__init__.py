"""The state repository as a bare mirror, read straight from git objects.

`Mirror` fetches the remote into `data_dir/mirrors/<hash>` (local path,
file://, git://, ssh:// or scp-like, http(s)://), resolves revisions, and hands
out `GitTree`s (the `reconciler.tree.StateTree` of a commit) without ever
checking files out. It also keeps the git notes that the `gitnotes` reporter
writes and pushes. `Credentials` names where secrets live; they never appear
in errors. Every failure is a one-line `SourceError`.

The package splits by concern: `auth` (credentials, host-key checks, secret
scrubbing), `gittree` (reading a commit), `local` (copying objects and refs
between repositories on this machine: fetches from a local remote, pushes
into the user's own clone), `mirror` (the repository itself).
"""

from reconciler.source.auth import Credentials
from reconciler.source.gittree import GitTree
from reconciler.source.local import Transfer
from reconciler.source.mirror import DEFAULT_REFSPECS, NOTES_REF, CommitInfo, Mirror

__all__ = ["DEFAULT_REFSPECS", "NOTES_REF", "CommitInfo", "Credentials", "GitTree", "Mirror",
           "Transfer"]
